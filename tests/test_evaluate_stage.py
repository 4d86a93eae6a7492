"""The evaluate stage: output structure on a tiny run, exclusion of bought items, cold-start degradation by
hand, the model card, the training-curve axis and the rolling-fold splitter."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from dc003.evaluate.compare import HEADLINE, assemble, score_model
from dc003.evaluate.folds import plan_folds, summarise, truncate_raw
from dc003.evaluate.plots import training_series
from dc003.evaluate.segments import (
    Segments,
    item_degradation,
    popularity_tiers,
    segments_before,
    split_truth,
    tier_summary,
    worst_degradation,
)
from tests.test_train_fixtures import CUTOFFS, N_ITEMS, contracts, tiny_config, write_dataset

BASELINES = ("popularity", "trending", "repurchase", "als")


def _serving(prior: float = 0.5, new_item: float | None = None, boost: float = 0.0):  # type: ignore[no-untyped-def]
    from dc003.params.deploy import ServingParams

    return ServingParams(
        popularity_prior=prior, prior_floor=1e-3, new_item_quantile=new_item, repurchase_boost=boost
    )


def _params(**kw: object):  # type: ignore[no-untyped-def]
    from dc003.params.evaluate import EvaluateParams

    values: dict[str, object] = {
        "exclude_purchased": False,
        "bootstrap_samples": 50,
        "confidence": 0.95,
        "max_k": 50,  # larger than the 30-item catalogue: every list is the whole catalogue
        "max_users": 0,
        "trending_weeks": 2,
        "trending_half_life_days": 7.0,
        "repurchase_half_life_days": 7.0,
        "als": {"factors": 4, "iterations": 3, "regularization": 0.05, "alpha": 10.0},
        **kw,
    }
    return EvaluateParams.model_validate(values)


def _history(phases: list[tuple[str, int]]) -> dict[str, object]:
    out = []
    for i, (name, n_epochs) in enumerate(phases):
        epochs = [
            {
                "epoch": e,
                "train/epoch_loss": 1.0 - 0.1 * e,
                "val/loss": 1.1 - 0.1 * e,
                "val/recall_50": 0.1 * i,
            }
            for e in range(n_epochs)
        ]
        out.append(
            {
                "phase": name,
                "epochs": epochs,
                "step_loss_head": 1.2,
                "final": epochs[-1],
                "parameter_count": {"user_tower": 10, "item_tower": 20},
                "train_samples": 100,
                "train_seconds": 1.0,
                "device": "cpu",
                "precision": "fp32",
                # phase 2 switched on a knob beyond the contract, the others none
                "params": {"distillation_weight": 0.5 if name == "phase_2" else 0.0, "temperature": 0.08},
            }
        )
    return {"phases": out}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny dataset (with an oracle that ranks each test user's purchases first) and an untrained model."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from dc003.model import checkpoint
    from dc003.model.two_tower import TwoTowerModel
    from dc003.train.data import load_training_data

    torch.set_num_threads(1)
    root = write_dataset(tmp_path_factory.mktemp("eval"))
    text = np.load(root / "text" / "item_text.npy")
    data = load_training_data(root / "dataset", text, tiny_config(), contracts()[1])
    torch.manual_seed(0)
    model = TwoTowerModel(tiny_config())
    model.user_tower.history.set_item_attributes(torch.from_numpy(data.item_attributes))
    checkpoint.save_model(root / "best_model.pt", model)
    test = data.split == 3
    users = np.unique(data.user[test])
    rows = []
    for u in users[:-1]:  # the last test user has no oracle ranking
        bought = np.unique(data.item[test & (data.user == u)])
        rest = np.setdiff1d(np.arange(N_ITEMS), bought)
        for r, i in enumerate(np.r_[bought, rest]):
            rows.append((u, i, r + 1, 1.0 / (r + 1)))
    arr = np.array(rows)
    pq.write_table(
        pa.table(
            {
                "user_idx": arr[:, 0].astype(np.int32),
                "item_idx": arr[:, 1].astype(np.int32),
                "rank": arr[:, 2].astype(np.int32),
                "score": arr[:, 3].astype(np.float32),
            }
        ),
        root / "dataset" / "oracle.parquet",
    )
    (root / "training_metrics.json").write_text(
        json.dumps(_history([("phase_1", 2), ("phase_2", 3), ("phase_3", 2), ("phase_4", 1)]))
    )
    return root


def _run(root: Path, out: Path, synthetic_scale: str | None = None, **kw: object) -> dict:  # type: ignore[type-arg]
    from dc003.evaluate.run import EvaluatePaths, run_evaluate
    from tests.conftest import REPO

    paths = EvaluatePaths(
        checkpoint=root / "best_model.pt",
        dataset_dir=root / "dataset",
        text_dir=root / "text",
        training_metrics=root / "training_metrics.json",
        metrics_dir=out / "metrics",
        plots_dir=out / "plots",
        reports_dir=out / "reports",
    )
    return run_evaluate(
        3, _params(**kw), _serving(), paths, dc003_path=REPO / "contracts/dc003.yaml",
        synthetic_scale=synthetic_scale,  # type: ignore[arg-type]
    )  # fmt: skip


@pytest.fixture(scope="module")
def outputs(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:  # type: ignore[type-arg]
    out = tmp_path_factory.mktemp("outputs")
    return out, _run(tiny_run, out)


def test_stage_writes_every_output_with_all_models_side_by_side(outputs: tuple[Path, dict]) -> None:  # type: ignore[type-arg]
    tmp_path, results = outputs
    written = json.loads((tmp_path / "metrics/evaluation_results.json").read_text())
    assert written == json.loads(json.dumps(results))
    assert list(written["models"]) == ["two_tower", *BASELINES, "oracle"]
    for name, metrics in written["models"].items():
        assert list(metrics) == list(HEADLINE)
        assert all(v is None or isinstance(v, float) for v in metrics.values()), name
        for m in HEADLINE[:4]:
            ci = written["intervals"][name][m]
            assert ci["low"] <= ci["high"]
        assert {"warm_users", "cold_users", "warm_items", "cold_items"} <= set(written["segments"][name])
    # the oracle ranks each covered user's purchases first; one user has no ranking (recall 0)
    n = written["users"]["n_users_evaluated"]
    assert written["models"]["oracle"]["recall_50"] == pytest.approx((n - 1) / n)
    assert written["setup"]["oracle_users_missing"] == 1
    # k beyond the catalogue: every model lists all 30 items, so recall@50 = recall@30 = 1 for all
    assert written["models"]["popularity"]["recall_50"] == pytest.approx(1.0)
    assert written["models"]["popularity"]["coverage_50"] == pytest.approx(1.0)
    rows = json.loads((tmp_path / "metrics/recall_at_k.json").read_text())
    assert [r["k"] for r in rows] == list(range(1, 51))
    assert set(rows[0]) == {"k", "two_tower", *BASELINES, "oracle"}
    curve = [r["two_tower"] for r in rows]
    assert curve == sorted(curve) and curve[-1] == pytest.approx(1.0)
    for png in ("training_curves.png", "recall_at_k.png"):
        assert (tmp_path / "plots" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_model_card_lists_every_model_and_each_contract_threshold(outputs: tuple[Path, dict]) -> None:  # type: ignore[type-arg]
    tmp_path, _ = outputs
    card = (tmp_path / "reports/MODEL_CARD.md").read_text()
    dc003, _ = contracts()
    acc = dc003.inference_requirements.accuracy
    for bar in (acc.recall_50, acc.ndcg_10, acc.coverage, acc.cold_start_performance):
        assert f"`{bar.text}`" in card
    table = card.split("## Against the baselines")[1].split("##")[0]
    for name in ("two_tower", *BASELINES, "oracle"):
        assert f"| {name} |" in table
    for heading in ("## Intended use", "## Data", "## Architecture", "## Known limitations"):
        assert heading in card
    # every model but the two-tower has a paired-difference row
    paired = card.split("paired bootstrap interval")[1].split("##")[0]
    for name in (*BASELINES, "oracle"):
        assert f"| {name} |" in paired
    assert "| two_tower |" not in paired
    # the extension the run switched on is named under its phase, once; switched-off ones are not
    training = card.split("- Training:")[1].split("##")[0]
    ext = [line for line in training.splitlines() if "beyond the contract" in line]
    assert len(ext) == 1 and "`phase_2.distillation_weight` = 0.5" in ext[0]
    assert training.index("phase_2:") < training.index(ext[0]) < training.index("phase_3:")
    # the architecture and serving extensions of this run, from the checkpoint and the evaluation setup
    architecture = card.split("## Architecture")[1].split("- Training:")[0]
    assert "- History token: a linear map of the item tower's embedding" in architecture
    assert "history_residual" not in architecture  # the tiny model runs without the skip path
    assert "`serving.popularity_prior` = 0.5" in architecture and "repurchase_boost" not in architecture


def test_taste_probe_runs_only_on_the_generators_customers(
    tiny_run: Path,
    tmp_path: Path,
    outputs: tuple[Path, dict],  # type: ignore[type-arg]
) -> None:
    # real (or hand-made) data: no probe, no card section
    assert "taste_probe" not in outputs[1]
    assert "Customer taste in the user embeddings" not in (outputs[0] / "reports/MODEL_CARD.md").read_text()
    # declared synthetic, but these customers are not the generator's at that scale and seed: said, not faked
    results = _run(tiny_run, tmp_path, synthetic_scale="tiny")
    n = results["users"]["n_users_evaluated"]
    assert results["taste_probe"]["skipped"].startswith(f"{n} of {n} customers are not the generator's")
    card = (tmp_path / "reports/MODEL_CARD.md").read_text()
    assert "### Customer taste in the user embeddings (synthetic data)" in card and "Not probed: " in card


def test_two_tower_ranks_by_cosine_plus_the_popularity_prior(tiny_run: Path) -> None:
    from dc003.evaluate.run import two_tower_top_k
    from dc003.model.checkpoint import load_model
    from dc003.scoring.ranking import top_k_from_scores
    from dc003.scoring.serving_score import POPULARITY
    from dc003.train.batches import ItemTable
    from dc003.train.data import load_training_data
    from dc003.train.validation import embed_items, embed_users, retrieval_set

    model, _ = load_model(tiny_run / "best_model.pt")
    model.eval()
    text = np.load(tiny_run / "text" / "item_text.npy")
    data = load_training_data(tiny_run / "dataset", text, model.config)
    rset = retrieval_set(data, "test")
    cpu = torch.device("cpu")
    max_len = model.config.user_tower.sequence.max_len
    users = np.asarray(embed_users(model, data, "test", rset.query_rows, max_len, cpu))
    items = np.asarray(embed_items(model, ItemTable.build(data, "test", cpu)))
    names = [n.name for n in model.config.item_tower.numerical]
    pop = data.features["test"].item_num[:, names.index(POPULARITY)]
    assert pop.max() > pop.min()
    cosine = users @ items.T
    tau = model.config.temperature
    with_prior = top_k_from_scores(cosine + 0.5 * tau * np.log(pop + 1e-3)[None, :], 10)
    plain = top_k_from_scores(cosine, 10)
    assert (with_prior != plain).any()  # the prior changes some order here
    assert np.array_equal(two_tower_top_k(model, data, rset, 10, None, _serving(0.5)), with_prior)
    assert np.array_equal(two_tower_top_k(model, data, rset, 10, None, _serving(0.0)), plain)


def test_serving_sweep_rows_match_the_scored_two_tower(outputs: tuple[Path, dict]) -> None:  # type: ignore[type-arg]
    out, results = outputs
    sweep = results["serving_sweep"]
    assert sweep["chosen"] == {
        "popularity_prior": 0.5,
        "new_item_quantile": None,
        "repurchase_boost": 0.0,
        "tail_prior": None,
    }
    assert set(sweep["knobs"]) == {"popularity_prior", "new_item_quantile", "repurchase_boost", "tail_prior"}
    for name, splits in sweep["knobs"].items():
        assert set(splits) == {"val", "test"}
        rows = splits["test"]
        (chosen,) = [r for r in rows if r[name] == sweep["chosen"][name]]
        # the sweep's row for the run's values is the two-tower the results score (same users, same ranking)
        assert chosen["ndcg_10"] == pytest.approx(results["models"]["two_tower"]["ndcg_10"])
        assert chosen["coverage_50"] == pytest.approx(results["models"]["two_tower"]["coverage_50"])
    prior_rows = sweep["knobs"]["popularity_prior"]["test"]
    assert [r["popularity_prior"] for r in prior_rows] == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert len({r["ndcg_10"] for r in prior_rows}) > 1
    # the boost lifts repurchases: never fewer of them listed than without it
    boost_rows = sweep["knobs"]["repurchase_boost"]["test"]
    assert boost_rows[-1]["repurchases_recall_50"] >= boost_rows[0]["repurchases_recall_50"]
    assert "popularity_score" in results["setup"]["similarity"]
    card = (out / "reports" / "MODEL_CARD.md").read_text()
    assert "#### Popularity prior" in card and "| 0.5 (this run) |" in card
    assert "#### New-item prior" in card and "| off (this run) |" in card
    # the new-item rule reads the degradation's interval (tested by hand below; the tiny run's buyers buy
    # no never-sold item, so it is null here with the cold-item recall); the card shows it
    for rows in sweep["knobs"]["new_item_quantile"].values():
        assert all(r["cold_items_degradation_high"] is None for r in rows)
        assert all(r["cold_items_recall_50"] is None for r in rows)
    assert "val degradation interval's upper end" in card
    assert "#### Repurchase boost" in card
    # the tail prior re-ranks only the list after its first head_k (10): NDCG@10 is the same in every row
    tail_rows = sweep["knobs"]["tail_prior"]["test"]
    assert [r["tail_prior"] for r in tail_rows] == [None, 0.0, 0.1, 0.15, 0.25, 0.35]
    assert len({r["ndcg_10"] for r in tail_rows}) == 1
    assert "#### Tail prior" in card
    # each rule's pick, read off the val rows; the card says it beside the value this run used
    picks = sweep["rule_picks"]
    assert set(picks) == {
        "popularity_prior",
        "new_item_quantile",
        "repurchase_boost",
    }  # tail: needs a ceiling
    val = sweep["knobs"]["popularity_prior"]["val"]
    best = max(r["recall_50"] for r in val)
    assert picks["popularity_prior"]["picks"] == next(
        r["popularity_prior"] for r in val if r["recall_50"] == best
    )
    assert picks["popularity_prior"]["agrees"] == (picks["popularity_prior"]["picks"] == 0.5)
    for name, pick in picks.items():
        assert pick["this_run"] == sweep["chosen"][name]
        assert f"Rule: {pick['rule']}." in card


def test_new_item_prior_and_repurchase_boost_are_the_served_score(tiny_run: Path) -> None:
    """The two-tower's ranking with both knobs on is cosine + prior (never-sold items at the quantile of
    the sold items' popularity, in the prior and in the item tower's input) + boost x temperature x
    log(1 + times bought in the history), by hand."""
    from dc003.evaluate.run import two_tower_top_k
    from dc003.model.checkpoint import load_model
    from dc003.scoring.ranking import top_k_from_scores
    from dc003.scoring.serving_score import POPULARITY
    from dc003.train.batches import ItemTable, history_window
    from dc003.train.data import load_training_data
    from dc003.train.validation import embed_items, embed_users, retrieval_set

    model, _ = load_model(tiny_run / "best_model.pt")
    model.eval()
    text = np.load(tiny_run / "text" / "item_text.npy")
    data = load_training_data(tiny_run / "dataset", text, model.config)
    # items 3 and 7 never sold before the test cutoff (their earlier rows become item 0's)
    early = np.isin(data.item, [3, 7]) & (data.day < data.cutoffs["test"])
    data = dataclasses.replace(data, item=np.where(early, 0, data.item))
    rset = retrieval_set(data, "test")
    cpu = torch.device("cpu")
    users = np.asarray(embed_users(model, data, "test", rset.query_rows, 50, cpu))
    names = [n.name for n in model.config.item_tower.numerical]
    pop = data.features["test"].item_num[:, names.index(POPULARITY)].astype(np.float64)
    never = data.never_sold("test")
    assert np.flatnonzero(never).tolist() == [3, 7]
    assert not np.isin(np.flatnonzero(never), data.item[data.day < data.cutoffs["test"]]).any()
    pop = np.where(never, np.quantile(pop[(pop > 0) & ~never], 0.5), pop)
    # the item tower reads the same imputed popularity for the never-sold items
    table = ItemTable.build(data, "test", cpu)
    as_sold = np.asarray(embed_items(model, table))
    table.features.numerical[:, names.index(POPULARITY)] = torch.from_numpy(pop.astype(np.float32))
    items = np.asarray(embed_items(model, table))
    np.testing.assert_array_equal(items[~never], as_sold[~never])
    assert not np.array_equal(items[never], as_sold[never])
    tau = model.config.temperature
    hist, pad = history_window(data, rset.query_rows, 50)
    counts = np.zeros((rset.users.size, data.n_items))
    np.add.at(counts, (np.repeat(np.arange(rset.users.size), hist.shape[1]), hist.ravel()), (~pad).ravel())
    assert counts.max() >= 1
    score = users @ items.T + 0.5 * tau * np.log(pop + 1e-3)[None, :] + 2.0 * tau * np.log1p(counts)
    expected = top_k_from_scores(score, 10)
    got = two_tower_top_k(model, data, rset, 10, None, _serving(0.5, new_item=0.5, boost=2.0))
    assert np.array_equal(got, expected)
    assert not np.array_equal(got, two_tower_top_k(model, data, rset, 10, None, _serving(0.5)))


def test_exclusion_removes_bought_items_from_every_list(tiny_run: Path) -> None:
    from dc003.evaluate.run import purchased_before, rank_all
    from dc003.model.checkpoint import load_model
    from dc003.train.data import load_training_data

    model, _ = load_model(tiny_run / "best_model.pt")
    text = np.load(tiny_run / "text" / "item_text.npy")
    data = load_training_data(tiny_run / "dataset", text, model.config)
    oracle = tiny_run / "dataset" / "oracle.parquet"
    rset, kept, _ = rank_all(model, data, _params(max_k=50), _serving(), 3, oracle)
    _, excl, info = rank_all(model, data, _params(max_k=50, exclude_purchased=True), _serving(), 3, oracle)
    bought = purchased_before(data, rset.users, CUTOFFS["test"]).toarray() > 0
    assert info["excluded_pairs"] == int(bought.sum()) > 0
    for name in kept:
        top = excl[name]
        rows, cols = np.nonzero(top >= 0)
        assert not bought[rows, top[rows, cols]].any(), name
        # what is left is exactly the not-yet-bought catalogue (k covers the whole catalogue)
        for r in range(top.shape[0]):
            if name != "oracle":
                assert set(top[r][top[r] >= 0]) == set(np.flatnonzero(~bought[r])), name
    # without exclusion the repurchase baseline leads with a bought item for every returning user
    assert all(bought[r, kept["repurchase"][r, 0]] for r in range(bought.shape[0]) if bought[r].any())


def test_max_users_scores_the_same_seeded_sample_for_every_model(tiny_run: Path) -> None:
    from dc003.evaluate.run import rank_all
    from dc003.model.checkpoint import load_model
    from dc003.train.data import load_training_data
    from dc003.train.validation import retrieval_set

    model, _ = load_model(tiny_run / "best_model.pt")
    text = np.load(tiny_run / "text" / "item_text.npy")
    data = load_training_data(tiny_run / "dataset", text, model.config)
    oracle = tiny_run / "dataset" / "oracle.parquet"
    full, tops, _ = rank_all(model, data, _params(), _serving(), 3, oracle)
    n = full.users.size // 2
    sample, sampled_tops, _ = rank_all(model, data, _params(max_users=n), _serving(), 3, oracle)
    assert sample.users.size == n and np.all(np.diff(sample.users) > 0)
    rows = np.searchsorted(full.users, sample.users)
    assert np.array_equal(full.users[rows], sample.users)  # a subset of the week's buyers
    assert np.array_equal(sample.query_rows, full.query_rows[rows])
    assert all(np.array_equal(sample.truth[i], full.truth[r]) for i, r in enumerate(rows))
    for name in ("two_tower", "popularity", "repurchase"):  # the same users' lists, ranked alike
        assert np.array_equal(sampled_tops[name], tops[name][rows]), name
    again = retrieval_set(data, "test", n, 3)
    other = retrieval_set(data, "test", n, 4)
    assert np.array_equal(again.users, sample.users) and not np.array_equal(other.users, sample.users)
    assert np.array_equal(retrieval_set(data, "test", full.users.size, 3).users, full.users)


def test_oracle_exclusion_moves_the_rest_up(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq
    import scipy.sparse as sp

    from dc003.evaluate.run import oracle_top_k

    pq.write_table(
        pa.table({"user_idx": [5, 5, 5, 7, 7], "item_idx": [3, 1, 4, 0, 2], "rank": [1, 2, 3, 1, 2]}),
        tmp_path / "o.parquet",
    )
    users = np.array([7, 5, 9])
    exclude = sp.csr_matrix(([1, 1], ([1, 0], [3, 2])), shape=(3, 6))
    top, missing = oracle_top_k(tmp_path / "o.parquet", users, 6, 3, exclude)
    assert top.tolist() == [[0, -1, -1], [1, 4, -1], [-1, -1, -1]]
    assert missing == 1


def test_cold_start_degradation_by_hand() -> None:
    # users 0, 1 warm (bought before day 10), 2, 3 cold; item 5 never sold before day 10
    segs = segments_before(
        np.array([0, 1, 0, 2]), np.array([0, 1, 2, 5]), np.array([1, 2, 3, 12]),
        cutoff_day=10, users=np.array([0, 1, 2, 3]), n_items=6,
    )  # fmt: skip
    assert segs.warm_users.tolist() == [True, True, False, False]
    assert segs.cold_item.tolist() == [False, False, False, True, True, True]
    truth = [np.array([0, 5]), np.array([1]), np.array([2, 3]), np.array([4])]
    cold, warm = split_truth(truth, segs.cold_item)
    assert [c.tolist() for c in cold] == [[5], [], [3], [4]]
    assert [w.tolist() for w in warm] == [[0], [1], [2], []]
    # top lists (k = 50 covers all 6 items only where written out):
    #   user 0 hits 0, misses 5  -> recall 1/2; warm-item part 1/1, cold-item part 0/1
    #   user 1 hits 1            -> recall 1;   warm 1/1
    #   user 2 hits 3, misses 2  -> recall 1/2; warm 0/1, cold 1/1
    #   user 3 misses 4          -> recall 0;   cold 0/1
    top = np.array([[0, 1], [1, 0], [3, 0], [0, 1]])
    full = score_model(
        top, truth, segs, n_items=6, item_category=np.zeros(6, dtype=np.int64), n_categories=1,
        max_k=50, n_boot=20, alpha=0.05, seed=0,
    )  # fmt: skip
    res = assemble({"m": full}, ["all"])
    cs = res["cold_start"]["m"]
    # users: warm mean (1/2 + 1) / 2 = 0.75, cold mean (1/2 + 0) / 2 = 0.25 -> 1 - 0.25 / 0.75 = 2/3
    assert cs["cold_users"] == pytest.approx(2 / 3)
    # items: warm-item recall (1 + 1 + 0) / 3 = 2/3, cold-item recall (0 + 1 + 0) / 3 = 1/3 -> 1/2
    assert cs["cold_items"] == pytest.approx(0.5)
    # the serving sweep's form of it (the new-item rule reads its interval's upper end): same point
    deg = item_degradation(top, cold, warm, n_boot=200, alpha=0.05, seed=0)
    assert deg["mean"] == pytest.approx(0.5) and deg["ci_low"] <= 0.5 <= deg["ci_high"]
    assert deg["ci_high"] > deg["ci_low"]  # three cold-item buyers: the resamples disagree
    assert res["models"]["m"]["cold_start_degradation"] == pytest.approx(2 / 3)  # the worse one
    assert res["models"]["m"]["recall_50"] == pytest.approx((0.5 + 1 + 0.5 + 0) / 4)
    # repurchases: user 0's item 0 (bought day 1) and user 1's item 1; user 2 bought item 5 only after the
    # cutoff, so nothing of theirs is a repurchase. Users 0 and 1 hit theirs -> recall 1.
    # new purchases: user 0 misses 5 (0/1), user 2 hits 3 of {2, 3} (1/2), user 3 misses 4 (0/1) -> 1/6
    assert segs.bought is not None and segs.bought.toarray()[:, [0, 1, 2, 5]].tolist() == [
        [1, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]
    ]  # fmt: skip
    again = res["segments"]["m"]["repurchases"]
    new = res["segments"]["m"]["new_purchases"]
    assert (again["n_purchases"], again["n_users_evaluated"]) == (2, 2)
    assert (new["n_purchases"], new["n_users_evaluated"]) == (4, 3)
    assert again["recall_50"]["mean"] == pytest.approx(1.0)
    assert new["recall_50"]["mean"] == pytest.approx(1 / 6)


def test_popularity_tiers_by_hand() -> None:
    # 24 purchases before the cutoff: item 0 x8, items 1-2 x4, items 3-4 x2, items 5-8 x1, item 9 never
    counts = np.array([8, 4, 4, 2, 2, 1, 1, 1, 1, 0])
    assert counts.sum() == 24
    # purchases ranked above each: 0, 8, 12, 16, 18, 20, 21, 22, 23. Head: starts below 8 -> item 0.
    # Torso: starts below 16 -> items 1, 2. Tail: the rest; item 9 was never bought (cold, -1).
    assert popularity_tiers(counts).tolist() == [0, 1, 1, 2, 2, 2, 2, 2, 2, -1]
    # ties cross a boundary whole: by rank, the three items would start at 0, 3 and 6 of 9 purchases
    # (head, torso, tail), but equal counts share the highest tier any of them reaches
    assert popularity_tiers(np.array([3, 3, 3])).tolist() == [0, 0, 0]
    assert popularity_tiers(np.array([0, 0])).tolist() == [-1, -1]
    summary = tier_summary(counts)
    assert summary["head_items"] == {"items": 1, "purchases_before_cutoff": 8, "min_purchases": 8}
    assert summary["torso_items"] == {"items": 2, "purchases_before_cutoff": 8, "min_purchases": 4}
    assert summary["tail_items"] == {"items": 6, "purchases_before_cutoff": 8, "min_purchases": 1}


def test_recall_by_popularity_tier_by_hand() -> None:
    # before day 10: item 0 bought 3 times (head), item 1 twice (torso), item 2 once (tail); 3, 4 cold
    segs = segments_before(
        np.array([0, 1, 2, 0, 1, 0]), np.array([0, 0, 0, 1, 1, 2]), np.array([1, 2, 3, 4, 5, 6]),
        cutoff_day=10, users=np.array([0, 1, 2]), n_items=5,
    )  # fmt: skip
    assert segs.tier is not None and segs.tier.tolist() == [0, 1, 2, -1, -1]
    truth = [np.array([0, 2]), np.array([1, 3]), np.array([0, 1, 2])]
    # user 0 hits 0, misses 2; user 1 hits 1 (3 is cold: in no tier); user 2 hits 2 only
    top = np.array([[0, 4], [1, 4], [2, 4]])
    full = score_model(
        top, truth, segs, n_items=5, item_category=np.zeros(5, dtype=np.int64), n_categories=1,
        max_k=50, n_boot=20, alpha=0.05, seed=0,
    )  # fmt: skip
    res = assemble({"m": full}, ["all"])["segments"]["m"]
    head, torso, tail = res["head_items"], res["torso_items"], res["tail_items"]
    # head purchases: user 0 (hit), user 2 (miss) -> 1/2; torso: user 1 (hit), user 2 (miss) -> 1/2;
    # tail: user 0 (miss), user 2 (hit) -> 1/2; each tier over 2 users and 2 purchases
    assert [p["n_purchases"] for p in (head, torso, tail)] == [2, 2, 2]
    assert head["recall_50"]["mean"] == pytest.approx(0.5)
    assert torso["recall_50"]["mean"] == pytest.approx(0.5)
    assert tail["recall_50"]["mean"] == pytest.approx(0.5)
    # a model that lists only the head item: head recall 1, torso and tail 0
    only_head = score_model(
        np.array([[0], [0], [0]]), truth, segs, n_items=5, item_category=np.zeros(5, dtype=np.int64),
        n_categories=1, max_k=50, n_boot=20, alpha=0.05, seed=0,
    )  # fmt: skip
    res = assemble({"m": only_head}, ["all"])["segments"]["m"]
    assert res["head_items"]["recall_50"]["mean"] == pytest.approx(1.0)
    assert res["torso_items"]["recall_50"]["mean"] == 0.0 and res["tail_items"]["recall_50"]["mean"] == 0.0


def test_worst_degradation_handles_undefined_parts() -> None:
    assert worst_degradation(0.1, 0.3) == 0.3
    assert worst_degradation(-0.2, None) == -0.2
    assert worst_degradation(None, float("nan")) is None


def test_curve_rows_carry_every_plotted_model_even_without_an_oracle() -> None:
    import yaml

    from dc003.evaluate.compare import CURVE_MODELS, curve_rows
    from tests.conftest import REPO

    results = {"recall_at_k": {"k": [1, 2], "models": {"two_tower": [0.1, 0.2], "als": [0.0, 0.3]}}}
    rows = curve_rows(results)
    assert rows[1]["two_tower"] == 0.2 and rows[1]["als"] == 0.3
    assert rows[0]["oracle"] is None and set(rows[0]) == {"k", *CURVE_MODELS}
    plots = yaml.safe_load((REPO / "dvc.yaml").read_text())["plots"]
    fields = next(p["recall_at_k"]["y"] for p in plots if "recall_at_k" in p)
    assert next(iter(fields.values())) == list(CURVE_MODELS)


def test_no_cold_users_gives_null_not_a_number() -> None:
    segs = Segments(
        warm_users=np.ones(2, dtype=bool), cold_users=np.zeros(2, dtype=bool), cold_item=np.zeros(3, bool)
    )
    full = score_model(
        np.array([[0, 1], [1, 2]]), [np.array([0]), np.array([2])], segs, n_items=3,
        item_category=np.zeros(3, dtype=np.int64), n_categories=1, max_k=50, n_boot=10, alpha=0.05, seed=0,
    )  # fmt: skip
    res = assemble({"m": full}, ["all"])
    assert res["models"]["m"]["cold_start_degradation"] is None
    json.dumps(res, allow_nan=False)  # strict JSON: undefined values are null


def test_training_series_puts_phases_on_one_axis() -> None:
    s = training_series(_history([("phase_1", 2), ("phase_2", 3), ("phase_4", 1)]))
    assert s["boundaries"] == [(0.0, "phase_1"), (2.0, "phase_2"), (5.0, "phase_4")]
    assert s["x_val"] == [1, 2, 3, 4, 5, 6]
    # a start point per phase (its first steps) then one point per epoch
    assert s["x_train"] == [0.0, 1, 2, 2.0, 3, 4, 5, 5.0, 6]
    assert s["end"] == 6


def test_folds_are_consecutive_non_overlapping_weeks() -> None:
    folds = plan_folds(last_day=100, n_folds=4)
    assert [(f.test_start, f.last_day) for f in folds] == [(94, 100), (87, 93), (80, 86), (73, 79)]
    days = [set(range(f.test_start, f.last_day + 1)) for f in folds]
    assert all(len(d) == 7 for d in days)
    assert all(not (a & b) for i, a in enumerate(days) for b in days[i + 1 :])
    with pytest.raises(ValueError):
        plan_folds(100, 0)


def test_truncation_keeps_only_rows_up_to_the_fold_and_bytes_as_they_are(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "transactions_train.csv").write_text(
        "t_dat,customer_id,article_id,price,sales_channel_id\n"
        "2020-09-01,a,0108775015,0.01,2\n"
        "2020-09-08,b,0108775044,0.02,1\n"
        "2020-09-09,a,0108775015,0.01,2\n"
        "not-a-date,c,0108775015,0.01,2\n"
    )
    (src / "customers.csv").write_text("customer_id\na\n")
    last = int((np.datetime64("2020-09-08") - np.datetime64("1970-01-01")).astype(int))
    rows = truncate_raw(src, tmp_path / "dst", last)
    out = (tmp_path / "dst" / "transactions_train.csv").read_text().splitlines()
    # strictly after the fold's last day is gone; the unparseable row is left to the build's quarantine
    assert out[1:] == ["2020-09-01,a,0108775015,0.01,2", "2020-09-08,b,0108775044,0.02,1",
                       "not-a-date,c,0108775015,0.01,2"]  # fmt: skip
    assert rows == {"transactions_read": 4, "transactions_kept": 3}
    assert (tmp_path / "dst" / "customers.csv").read_text() == "customer_id\na\n"
    # a synthetic source's oracle ranks the source's own last week: kept only where nothing was cut
    (src / "oracle.parquet").write_bytes(b"PAR1")
    truncate_raw(src, tmp_path / "cut", last)
    assert not (tmp_path / "cut" / "oracle.parquet").exists()
    latest = int((np.datetime64("2020-09-09") - np.datetime64("1970-01-01")).astype(int))
    assert truncate_raw(src, tmp_path / "whole", latest) == {"transactions_read": 4, "transactions_kept": 4}
    assert (tmp_path / "whole" / "oracle.parquet").read_bytes() == b"PAR1"


def test_fold_summary_mean_and_spread() -> None:
    per_fold = [
        {"a": {"recall_50": 0.1, "cold_start_degradation": None}},
        {"a": {"recall_50": 0.3, "cold_start_degradation": 0.5}},
    ]
    s = summarise(per_fold)["a"]
    assert s["recall_50"]["mean"] == pytest.approx(0.2)
    assert s["recall_50"]["std"] == pytest.approx(np.std([0.1, 0.3], ddof=1))
    assert s["cold_start_degradation"] == {"mean": 0.5, "std": None, "n_folds": 1, "values": [None, 0.5]}


def test_paired_differences_by_hand() -> None:
    from dc003.evaluate.compare import paired_differences, paired_verdict

    truth = [np.array([0]), np.array([2])]
    tops = {
        "two_tower": np.array([[0, 1], [2, 3]]),  # both users hit at rank 1
        "same": np.array([[0, 1], [2, 3]]),
        "half": np.array([[1, 0], [4, 5]]),  # user 0 hits at rank 2, user 1 misses
        "none": np.array([[7, 8], [7, 8]]),
    }
    d = paired_differences(tops, truth, n_boot=200, alpha=0.05, seed=0)
    assert set(d) == {"same", "half", "none"}  # the reference is not compared with itself
    assert d["same"]["recall_50"] == {"difference": 0.0, "low": 0.0, "high": 0.0}
    assert paired_verdict(d["same"]["recall_50"]) == "no clear difference"
    # per-user recall differences [0, 1]; NDCG@10 differences [1 - 1/log2(3), 1]
    assert d["half"]["recall_50"]["difference"] == pytest.approx(0.5)
    assert d["half"]["ndcg_10"]["difference"] == pytest.approx((1 - 1 / np.log2(3) + 1) / 2)
    assert 0.0 <= d["half"]["recall_50"]["low"] <= 0.5 <= d["half"]["recall_50"]["high"] <= 1.0
    assert d["none"]["recall_50"] == {"difference": 1.0, "low": 1.0, "high": 1.0}
    assert paired_verdict(d["none"]["recall_50"]) == "two-tower ahead"
    assert paired_verdict({"difference": -0.1, "low": -0.2, "high": -0.01}) == "two-tower behind"


def test_rule_picks_apply_each_knobs_rule_to_the_val_rows() -> None:
    from dc003.contracts.thresholds import Threshold
    from dc003.evaluate.card import _rule_line
    from dc003.evaluate.run import rule_picks

    def rows(name: str, values: list[tuple[float | None, float, float | None, float | None]]) -> list[dict]:  # type: ignore[type-arg]
        # (value, recall, cold-item recall, upper end of the cold-item degradation's interval)
        return [
            {name: v, "recall_50": r, "cold_items_recall_50": c, "cold_items_degradation_high": h}
            for v, r, c, h in values
        ]

    bound = Threshold.parse("< 20 %")
    # popularity prior: best val recall; a tie goes to the first value of the grid
    prior = [(0.0, 0.1, None, None), (0.5, 0.3, None, None), (1.0, 0.3, None, None)]
    # new-item prior: the smallest value whose degradation's interval lies under 20 % (0.9), not 0.75,
    # whose interval reaches 0.35 whatever its point estimate
    new_item = [
        (None, 0.3, 0.03, 1.0),
        (0.5, 0.3, 0.225, 0.6),
        (0.75, 0.3, 0.27, 0.35),
        (0.9, 0.3, 0.36, 0.1),
    ]
    boost = [(0.0, 0.2, None, None), (1.0, 0.25, None, None)]
    sweep = {
        "confidence": 0.95,
        "chosen": {
            "popularity_prior": 0.5,
            "new_item_quantile": 0.5,
            "repurchase_boost": 0.0,
            "tail_prior": None,
        },
        "knobs": {
            "popularity_prior": {"val": rows("popularity_prior", prior)},
            "new_item_quantile": {"val": rows("new_item_quantile", new_item)},
            "repurchase_boost": {"val": rows("repurchase_boost", boost)},
            "tail_prior": {"val": rows("tail_prior", [(None, 0.2, None, None)])},
        },
    }
    picks = rule_picks(sweep, bound)
    assert set(picks) == {"popularity_prior", "new_item_quantile", "repurchase_boost"}
    assert (picks["popularity_prior"]["picks"], picks["popularity_prior"]["agrees"]) == (0.5, True)
    assert (picks["new_item_quantile"]["picks"], picks["new_item_quantile"]["agrees"]) == (0.9, False)
    assert "95% bootstrap interval" in picks["new_item_quantile"]["rule"]
    assert (picks["repurchase_boost"]["picks"], picks["repurchase_boost"]["agrees"]) == (1.0, False)
    # the model card flags the knobs whose value is not the rule's pick, and only those
    assert "not the rule's pick" in _rule_line("new_item_quantile", picks["new_item_quantile"])
    assert "not the rule's pick" not in _rule_line("popularity_prior", picks["popularity_prior"])
    # no value meets the bound, or the val week has no purchase of a never-sold item: no pick, and why
    hard = rows("new_item_quantile", [(None, 0.3, 0.03, 1.0), (0.9, 0.3, 0.3, 0.2)])
    none = rule_picks({**sweep, "knobs": {"new_item_quantile": {"val": hard}}}, bound)["new_item_quantile"]
    assert (none["picks"], none["agrees"]) == (None, False) and "< 20 %" in none["why"]
    empty = rows("new_item_quantile", [(None, 0.3, None, None), (0.9, 0.3, None, None)])
    none = rule_picks({**sweep, "knobs": {"new_item_quantile": {"val": empty}}}, bound)["new_item_quantile"]
    assert none["picks"] is None and "never-sold" in none["why"]
