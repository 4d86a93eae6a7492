"""Training machinery on a tiny dataset: batches, schedules, hard negatives, resume after a kill,
determinism, the NaN stop, and the four phases end to end."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from dc003.errors import Dc003Error
from dc003.model.two_tower import TwoTowerModel
from dc003.train.batches import basket_ids, epoch_order, history_window
from dc003.train.data import TrainingData, load_training_data
from dc003.train.loop import LoopSettings, train_phase
from dc003.train.negatives import (
    log_sampling_probability,
    neighbour_candidates,
    select_hard_negatives,
    training_positive_codes,
)
from dc003.train.objectives import BprObjective, InfoNceObjective
from dc003.train.recipes import BprRecipe, InBatchRecipe
from dc003.train.resume import ResumeStore
from dc003.train.schedule import Schedule
from tests.test_train_fixtures import N_ITEMS, tiny_config, write_dataset

CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def _one_thread() -> object:
    # tiny tensors: one thread avoids OpenMP barrier stalls when the test machine is busy
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, TrainingData]:
    from tests.test_train_fixtures import contracts

    root = write_dataset(tmp_path_factory.mktemp("tiny"))
    text = np.load(root / "text" / "item_text.npy")
    data = load_training_data(root / "dataset", text, tiny_config(), contracts()[1])
    return root, data


def _model(seed: int = 0) -> TwoTowerModel:
    torch.manual_seed(seed)
    return TwoTowerModel(tiny_config())


def _recipe(data: TrainingData, kind: str = "infonce") -> BprRecipe | InBatchRecipe:
    from dc003.train.batches import ItemTable

    examples = {"train": data.rows("train"), "val": data.rows("val")}
    items = {s: ItemTable.periods(data, s, CPU) for s in ("train", "val")}
    if kind == "bpr":
        return BprRecipe(data, examples, items, 50, CPU, BprObjective(0.1), negatives=2)
    log_q = log_sampling_probability(np.bincount(data.item[examples["train"]], minlength=data.n_items))
    return InBatchRecipe(
        data, examples, items, 50, CPU, InfoNceObjective(0.08, 0.1, 0.5), log_q=log_q, shared_negatives=4
    )


def _settings(**kw: object) -> LoopSettings:
    values: dict[str, object] = {
        "phase": "phase_2",
        "seed": 3,
        "epochs": 2,
        "batch_size": 16,
        "learning_rate": 1e-3,
        "weight_decay": 1e-5,
        "gradient_clipping": 1.0,
        "mixed_precision": False,
        "scheduler": "constant",
    }
    values.update(kw)
    return LoopSettings(**values)  # type: ignore[arg-type]


# ------------------------------------------------------------------ data and batches


def test_dataset_loads_with_histories_and_features(tiny: tuple[Path, TrainingData]) -> None:
    _, data = tiny
    assert data.n_items == N_ITEMS and data.item_text.shape == (N_ITEMS, 2, 384)
    assert set(data.features) == {"train", "val", "test"}
    assert np.isnan(
        data.features["train"].user_num[::5, 0]
    ).all()  # missing ages stay NaN (imputed in the tower)
    assert data.rows("train").size > 0 and data.rows("val").size > 0
    assert data.category_names[:2] == ["unknown", "Garment Upper body"]


def test_history_window_is_most_recent_first_and_trimmed(tiny: tuple[Path, TrainingData]) -> None:
    _, data = tiny
    rows = data.rows("train")[:10]
    items, padding = history_window(data, rows, 50)
    lengths = data.hist_end[rows] - data.hist_start[rows]
    assert items.shape[1] == lengths.max()  # trimmed to the longest real history
    for k, r in enumerate(rows):
        n = lengths[k]
        assert (~padding[k]).sum() == n
        expected = data.item[data.hist_start[r] : data.hist_end[r]][::-1]
        assert np.array_equal(items[k, :n], expected)
        assert (data.day[data.hist_start[r] : data.hist_end[r]] < data.day[r]).all()
    short, pad = history_window(data, rows, 2)
    assert short.shape[1] <= 2 and np.array_equal(short[~pad], items[:, :2][~padding[:, :2]])


def test_train_examples_see_item_features_as_of_their_week(tiny: tuple[Path, TrainingData]) -> None:
    root, data = tiny
    import pyarrow.parquet as pq

    rows = data.rows("train")
    assert len(data.train_weeks) == 5  # a 30-day train window
    assert np.array_equal(data.period[rows], (data.day[rows] - 100) // 7)
    # week 0 is the dataset's own items_train; week k counts purchases in the 28 days before day 100 + 7k
    assert np.array_equal(data.train_weeks[0][1], data.features["train"].item_num)
    window = pq.read_table(root / "dataset" / "items_train.parquet").column("popularity_score").to_numpy()
    assert np.allclose(data.train_weeks[0][1][:, 1], window)
    cut = 100 + 7 * 3
    sold = np.bincount(data.item[(data.day < cut) & (data.day >= cut - 28)], minlength=N_ITEMS).astype(float)
    expected = (sold - sold.min()) / (sold.max() - sold.min())
    assert np.allclose(data.train_weeks[3][1][:, 1], expected, atol=1e-6)
    assert not np.allclose(data.train_weeks[3][1][:, 1], data.train_weeks[0][1][:, 1])
    # the other split features are untouched
    _cat, num = data.item_arrays("val")
    assert num is data.features["val"].item_num


def test_a_batch_never_mixes_train_weeks(tiny: tuple[Path, TrainingData]) -> None:
    _, data = tiny
    recipe = _recipe(data)
    for pos in recipe.order("train", 8, np.random.default_rng(0)):
        assert np.unique(data.period[recipe.examples["train"][pos]]).size == 1


def test_history_dropout_shows_some_train_baskets_as_a_cold_customer(tiny: tuple[Path, TrainingData]) -> None:
    """A dropped basket has no history and the profile columns every customer without purchases shares
    (found from the data: no lifetime, purchases or preferred channel); its own age and club status stay.
    Val batches, and every batch at dropout 0, are as before."""
    import dataclasses

    from dc003.train.recipes import cold_profile

    _, data = tiny
    # customers 0-3 have no purchase before the train cutoff: their profile is a cold customer's
    early = np.isin(data.user, [0, 1, 2, 3]) & (data.day < data.cutoffs["train"])
    assert early.any()
    keep = ~early
    data = dataclasses.replace(
        data, user=data.user[keep], item=data.item[keep], day=data.day[keep], split=data.split[keep],
        hist_start=data.hist_start[keep], hist_end=data.hist_end[keep], period=data.period[keep],
    )  # fmt: skip
    (cat_cols, cat_vals), (num_cols, num_vals) = cold_profile(data)
    cold = data.features["train"]
    for j, v in zip(num_cols, num_vals, strict=True):
        assert (np.nan_to_num(cold.user_num[[0, 1, 2, 3], j]) == v).all()
    varies = [j for j in range(cold.user_num.shape[1]) if np.unique(cold.user_num[[0, 1, 2, 3], j]).size > 1]
    assert varies and not set(varies) & set(num_cols)  # e.g. age: the customer's own
    base = _recipe(data)
    drop = dataclasses.replace(base, history_dropout=0.5)
    pos = np.arange(64)
    users0, _, _ = base.batch("train", pos, np.random.default_rng(0))
    users1, _, _ = drop.batch("train", pos, np.random.default_rng(0))
    dropped = users1.history_padding.all(1) & ~users0.history_padding.all(1)
    assert 0 < int(dropped.sum()) < dropped.numel()
    kept = ~users1.history_padding.all(1)
    assert torch.equal(users1.history[kept], users0.history[kept])
    for j, v in zip(num_cols, num_vals, strict=True):
        assert (users1.numerical[dropped, j] == v).all()
    for j, v in zip(cat_cols, cat_vals, strict=True):
        assert (users1.categorical[dropped, j] == int(v)).all()
    others = [j for j in range(users0.numerical.shape[1]) if j not in num_cols]
    assert torch.equal(users1.numerical[:, others].nan_to_num(), users0.numerical[:, others].nan_to_num())
    val0, _, _ = base.batch("val", np.arange(16), np.random.default_rng(0))
    val1, _, _ = drop.batch("val", np.arange(16), np.random.default_rng(0))
    assert torch.equal(val0.history_padding, val1.history_padding)


def test_epoch_order_keeps_baskets_whole_and_covers_everything(tiny: tuple[Path, TrainingData]) -> None:
    _, data = tiny
    rows = data.rows("train")
    baskets = basket_ids(data, rows)
    lengths = data.hist_end[rows] - data.hist_start[rows]
    batches = epoch_order(baskets, lengths, 16, np.random.default_rng(0))
    flat = np.concatenate(batches)
    assert np.array_equal(np.sort(flat), np.arange(rows.size))  # each example exactly once
    for b in batches:
        members = set(baskets[b].tolist())
        full = {int(x) for x in np.flatnonzero(np.isin(baskets, list(members)))}
        assert full == set(b.tolist())  # whole baskets only
        assert len(members) > 1  # batch norm needs more than one user row
    assert np.mean([b.size for b in batches]) == pytest.approx(16, rel=0.35)
    again = epoch_order(baskets, lengths, 16, np.random.default_rng(0))
    assert all(np.array_equal(a, b) for a, b in zip(batches, again, strict=True))


def _check_batches(batches: list[np.ndarray], baskets: np.ndarray) -> None:
    assert np.array_equal(np.sort(np.concatenate(batches)), np.arange(baskets.size))  # each example once
    for b in batches:
        assert np.unique(baskets[b]).size >= 2  # never empty, never a single user row (batch norm)


@pytest.mark.parametrize("seed", range(8))
def test_a_basket_larger_than_a_batch_leaves_no_empty_or_single_basket_batch(seed: int) -> None:
    # baskets of 3, 20 and 3 examples, batches of 8: the 20 spans two batch slots; cut as before it left an
    # empty batch (IndexError in Recipe.table) or a batch of the big basket alone (batch norm refused it)
    baskets = np.repeat(np.arange(3), [3, 20, 3])
    batches = epoch_order(baskets, np.zeros(baskets.size, dtype=np.int64), 8, np.random.default_rng(seed))
    _check_batches(batches, baskets)
    # and in a longer run of mixed baskets, with train-week groups
    rng = np.random.default_rng(seed)
    sizes = rng.choice([1, 2, 3, 30], size=60, p=[0.4, 0.3, 0.2, 0.1])
    baskets = np.repeat(np.arange(sizes.size), sizes)
    weeks = np.repeat(rng.integers(0, 4, size=sizes.size), sizes)
    lengths = rng.integers(0, 50, size=baskets.size)
    _check_batches(epoch_order(baskets, lengths, 8, rng, np.sort(weeks)), baskets)


def test_a_train_week_of_one_basket_joins_the_week_before(tiny: tuple[Path, TrainingData]) -> None:
    """A week holding a single basket cannot make a batch of its own: its examples train in the previous
    week's batches with that week's item features (older, never newer than their own week)."""
    _, data = tiny
    recipe = _recipe(data)
    rows, periods = recipe.examples["train"], data.period[recipe.examples["train"]]
    baskets = recipe.baskets["train"]
    assert np.unique(periods).size > 2
    week = int(np.unique(periods)[2])
    lone = int(baskets[periods == week][0])
    keep = (periods != week) | (baskets == lone)  # week 2 keeps one basket
    recipe.examples["train"] = rows[keep]
    recipe.baskets["train"] = basket_ids(data, rows[keep])
    order = recipe.order("train", 8, np.random.default_rng(0))
    _check_batches(order, recipe.baskets["train"])
    (mixed,) = [b for b in order if np.unique(data.period[rows[keep][b]]).size > 1]
    assert set(np.unique(data.period[rows[keep][mixed]]).tolist()) == {week - 1, week}
    assert recipe.table("train", rows[keep][mixed]) is recipe.items["train"][week - 1]
    # the first week alone joins the next one: the batch reads the first week's (older) features
    first = int(np.unique(periods)[0])
    keep = (periods != first) | (baskets == int(baskets[periods == first][0]))
    order = epoch_order(basket_ids(data, rows[keep]), np.zeros(int(keep.sum())), 8, np.random.default_rng(0),
                        periods[keep])  # fmt: skip
    _check_batches(order, basket_ids(data, rows[keep]))
    (mixed,) = [b for b in order if np.unique(periods[keep][b]).size > 1]
    assert recipe.table("train", rows[keep][mixed]) is recipe.items["train"][first]


def test_deduplicated_towers_give_the_same_loss_as_per_example(tiny: tuple[Path, TrainingData]) -> None:
    """A batch runs each tower once per basket / distinct item and expands by index: the loss must equal
    the loss computed with one tower row per example."""
    _, data = tiny
    recipe = _recipe(data)
    model = _model().eval()
    model.objective = recipe.objective
    pos = recipe.order("train", 16, np.random.default_rng(1))[0]
    users, items, labels = recipe.batch("train", pos, np.random.default_rng(2))
    with torch.no_grad():
        dedup = model.compute_loss(model.get_user_embeddings(users), model.get_item_embeddings(items), labels)
        full_users = users._replace(**{f: getattr(users, f)[labels["user_rows"]] for f in users._fields})
        full_items = items.take(labels["item_rows"])
        plain = {k: v for k, v in labels.items() if k not in ("user_rows", "item_rows")}
        per_example = model.compute_loss(
            model.get_user_embeddings(full_users), model.get_item_embeddings(full_items), plain
        )
    assert labels["user_rows"].max() < labels["users"].numel()  # some example shared a user row
    assert dedup.item() == pytest.approx(per_example.item(), rel=1e-5)


# ------------------------------------------------------------------ schedules


def test_warm_restart_schedule() -> None:
    s = Schedule(
        "cosine_annealing_warm_restarts", lr=0.03, min_lr=5e-4, epochs=3, restart_epochs=1, restart_mult=2
    )
    assert s(0.0) == pytest.approx(0.03)
    assert s(0.999) == pytest.approx(5e-4, abs=2e-5)
    assert s(1.0) == pytest.approx(0.03)  # restart after the first epoch
    assert s(2.0) == pytest.approx((0.03 + 5e-4) / 2)  # halfway through the 2-epoch second cycle
    assert s(2.9999) == pytest.approx(5e-4, abs=1e-6)


def test_other_schedules_and_warmup() -> None:
    assert Schedule("constant", 1e-3, 0.0, 2)(1.7) == 1e-3
    lin = Schedule("linear_decay", 1e-5, 0.0, 1)
    assert lin(0.0) == 1e-5 and lin(0.5) == pytest.approx(5e-6) and lin(1.0) == 0.0
    cos = Schedule("cosine_annealing", 1.0, 0.0, 4)
    assert cos(2.0) == pytest.approx(0.5)
    warm = Schedule("constant", 1.0, 0.0, 1, warmup_steps=4)
    assert [warm(0.0, s) for s in range(5)] == [0.25, 0.5, 0.75, 1.0, 1.0]


# ------------------------------------------------------------------ hard negatives


def test_neighbour_candidates_threshold_and_category_preference() -> None:
    emb = np.array([[1.0, 0.0], [0.95, 0.31], [0.9, 0.44], [0.0, 1.0], [-1.0, 0.0]], dtype=np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    category = np.array([0, 0, 1, 1, 1])
    cand = neighbour_candidates(emb, category, threshold=0.3, n_candidates=4)
    # item 0: items 1 (same category, sim .95) and 2 (other category, sim .9) pass the threshold; 2 first;
    # 3 (sim 0) and 4 (sim -1) are below the threshold; never item 0 itself
    assert cand[0].tolist() == [2, 1, -1, -1]
    assert all(i not in row for i, row in enumerate(cand.tolist()))


def test_hard_negatives_never_a_training_positive_and_at_most_k() -> None:
    candidates = np.array([[1, 2, 3, -1], [0, 2, 3, -1], [0, 1, 3, -1], [0, 1, 2, -1]])
    users = np.array([0, 1])
    positives = np.array([0, 0])
    n_items = 4
    owned = np.array([0 * n_items + 0, 0 * n_items + 2, 1 * n_items + 0])  # user 0 bought 0 and 2
    hard = select_hard_negatives(users, positives, candidates, np.sort(owned), n_items, max_hard=2)
    assert hard[0].tolist() == [1, 3]  # 2 skipped: user 0 bought it
    assert hard[1].tolist() == [1, 2]  # capped at 2
    one = select_hard_negatives(users, positives, candidates, np.sort(owned), n_items, max_hard=5)
    assert one[0].tolist() == [1, 3, -1, -1, -1]


def test_training_positive_codes_cover_history_and_train_only(tiny: tuple[Path, TrainingData]) -> None:
    _, data = tiny
    codes = training_positive_codes(data)
    val = data.rows("val")
    before = data.split <= 1
    assert np.isin(data.user[before] * data.n_items + data.item[before], codes).all()
    only_val = ~np.isin(
        data.user[val] * data.n_items + data.item[val], data.user[before] * data.n_items + data.item[before]
    )
    assert not np.isin((data.user[val] * data.n_items + data.item[val])[only_val], codes).any()


# ------------------------------------------------------------------ the loop: determinism, resume, NaN


def _validate(model: TwoTowerModel) -> dict[str, float]:
    return {"val/probe": float(sum(p.detach().double().sum() for p in model.parameters()))}


def test_same_seed_same_data_gives_identical_results(
    tiny: tuple[Path, TrainingData], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, data = tiny
    monkeypatch.chdir(tmp_path)
    runs = []
    for _ in range(2):
        model = _model()
        result = train_phase(
            model, _recipe(data), _settings(), device=CPU, validate=_validate, progress=False
        )
        runs.append((result.epochs, {k: v.clone() for k, v in model.state_dict().items()}))
    assert runs[0][0] == runs[1][0]
    assert all(torch.equal(runs[0][1][k], runs[1][1][k]) for k in runs[0][1])
    other = _model()
    different = train_phase(
        other, _recipe(data), _settings(seed=4), device=CPU, validate=_validate, progress=False
    )
    assert different.epochs != runs[0][0]


class _Killed(Exception):
    pass


def test_killed_phase_resumes_from_last_epoch(
    tiny: tuple[Path, TrainingData], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, data = tiny
    monkeypatch.chdir(tmp_path)
    settings = _settings(epochs=3, scheduler="cosine_annealing_warm_restarts", min_learning_rate=1e-5)
    reference = _model()
    ref = train_phase(
        reference,
        _recipe(data),
        settings,
        device=CPU,
        validate=_validate,
        live_dir=tmp_path / "ref",
        progress=False,
    )

    store = ResumeStore(tmp_path / "resume", "key")
    _killed_in_epoch_2(data, settings, store, live_dir=tmp_path / "live")
    state = store.load()
    assert state is not None and state["epoch"] == 0

    resumed_model = _model(seed=99)  # different init: everything must come from the resume state
    resumed = train_phase(
        resumed_model,
        _recipe(data),
        settings,
        device=CPU,
        validate=_validate,
        live_dir=tmp_path / "live",
        resume=store,
        progress=False,
    )
    assert [e["epoch"] for e in resumed.epochs] == [0, 1, 2]
    assert resumed.epochs == ref.epochs
    ref_state = reference.state_dict()
    assert all(torch.equal(v, ref_state[k]) for k, v in resumed_model.state_dict().items())
    # the dvclive curves continue: one loss line per optimiser step of all three epochs
    ref_lines = (tmp_path / "ref/plots/metrics/train/loss.tsv").read_text().splitlines()
    got_lines = (tmp_path / "live/plots/metrics/train/loss.tsv").read_text().splitlines()
    assert len(got_lines) == len(ref_lines) == ref.steps + 1
    # a state saved for other inputs is never used
    assert ResumeStore(tmp_path / "resume", "other").load() is None


def _killed_in_epoch_2(
    data: TrainingData, settings: LoopSettings, store: ResumeStore, live_dir: Path | None = None
) -> None:
    """A phase killed during the second epoch's end, after the first epoch's state was saved."""
    calls = {"n": 0}

    def dies_in_epoch_2(model: TwoTowerModel) -> dict[str, float]:
        calls["n"] += 1
        if calls["n"] == 2:
            raise _Killed
        return _validate(model)

    with pytest.raises(_Killed):
        train_phase(
            _model(), _recipe(data), settings, device=CPU, validate=dies_in_epoch_2, live_dir=live_dir,
            resume=store, progress=False,
        )  # fmt: skip


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # a copy or a full disk cut it short


def _tamper(path: Path) -> None:
    import os

    torch.save({"model": {}, "epoch": 0, "hook": os.system}, path)  # a pickled callable: refused


@pytest.mark.parametrize(
    ("damage", "reason"),
    [(_truncate, "unreadable checkpoint, truncated or corrupted"), (_tamper, "may be unsafe to load")],
)
def test_an_unreadable_resume_state_is_discarded_and_the_phase_starts_fresh(
    tiny: tuple[Path, TrainingData],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    damage: object,
    reason: str,
) -> None:
    _, data = tiny
    monkeypatch.chdir(tmp_path)
    settings = _settings(epochs=2)
    reference = _model()
    ref = train_phase(reference, _recipe(data), settings, device=CPU, validate=_validate, progress=False)

    store = ResumeStore(tmp_path / "resume", "key")
    _killed_in_epoch_2(data, settings, store)
    assert store.path.is_file()
    assert callable(damage)
    damage(store.path)
    capsys.readouterr()

    # every later run used to stop on the raw torch.load error until the file was deleted by hand
    again = _model()
    result = train_phase(
        again, _recipe(data), settings, device=CPU, validate=_validate, resume=store, progress=False
    )
    (warning,) = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert warning.startswith(f"warning: resume state {store.path} discarded (")
    assert reason in warning and "the phase starts from its input again" in warning
    # a fresh start: the same epochs and weights as the run that was never interrupted
    assert [e["epoch"] for e in result.epochs] == [0, 1] and result.epochs == ref.epochs
    ref_state = reference.state_dict()
    assert all(torch.equal(v, ref_state[k]) for k, v in again.state_dict().items())
    state = store.load()  # the damaged file is gone; the state written by the fresh run reads
    assert state is not None and state["epoch"] == 0


def test_nan_loss_stops_the_phase_and_keeps_the_last_good_state(
    tiny: tuple[Path, TrainingData], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, data = tiny
    monkeypatch.chdir(tmp_path)
    recipe = _recipe(data)
    real = recipe.objective
    state = {"epoch": 0}

    def poisoned(user: torch.Tensor, item: torch.Tensor, labels: dict[str, torch.Tensor]) -> torch.Tensor:
        loss = real(user, item, labels)
        return loss * float("nan") if state["epoch"] == 1 else loss

    def validate(model: TwoTowerModel) -> dict[str, float]:
        state["epoch"] += 1
        return _validate(model)

    recipe.objective = poisoned
    store = ResumeStore(tmp_path / "resume", "k")
    with pytest.raises(
        Dc003Error, match=r"phase_2: epoch 1: step \d+: training loss is nan; the phase stopped"
    ) as err:
        train_phase(
            _model(), recipe, _settings(), device=CPU, validate=validate, resume=store, progress=False
        )
    assert str(store.path) in str(err.value)
    kept = store.load()
    assert kept is not None and kept["epoch"] == 0
    assert all(torch.isfinite(v).all() for v in kept["model"].values() if v.is_floating_point())


def test_finite_loss_runs_clean(
    tiny: tuple[Path, TrainingData], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, data = tiny
    monkeypatch.chdir(tmp_path)
    result = train_phase(
        _model(), _recipe(data, "bpr"), _settings(epochs=1), device=CPU, validate=_validate, progress=False
    )
    assert result.precision == "fp32" and math.isfinite(result.epochs[0]["train/epoch_loss"])
    assert result.grad_stats and all(s["steps"] == result.steps for s in result.grad_stats.values())


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_mixed_precision_path(
    tiny: tuple[Path, TrainingData], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dc003.train.batches import ItemTable

    _, data = tiny
    monkeypatch.chdir(tmp_path)
    gpu = torch.device("cuda")
    recipe = _recipe(data)
    recipe.device = gpu
    recipe.items = {s: ItemTable.periods(data, s, gpu) for s in ("train", "val")}
    result = train_phase(
        _model(),
        recipe,
        _settings(epochs=1, mixed_precision=True),
        device=gpu,
        validate=_validate,
        progress=False,
    )
    assert result.precision == "fp16-autocast+grad-scaler"
    assert math.isfinite(result.epochs[0]["train/epoch_loss"])


def test_distillation_teacher_sees_only_purchases_before_the_val_cutoff(
    tiny: tuple[Path, TrainingData],
) -> None:
    import dataclasses

    from dc003.params.evaluate import AlsParams
    from dc003.train.data import SPLIT_CODES
    from dc003.train.run import teacher_item_factors

    _, data = tiny
    als = AlsParams(factors=8, iterations=3, regularization=0.05, alpha=40.0)
    factors = teacher_item_factors(data, als, seed=0)
    assert factors.shape == (data.n_items, 8)
    seen = np.unique(data.item[data.split <= SPLIT_CODES["train"]])
    np.testing.assert_allclose(np.linalg.norm(factors[seen], axis=1), 1.0, rtol=1e-5)
    # other val/test purchases leave the teacher unchanged: it has no view of those weeks
    later = data.split > SPLIT_CODES["train"]
    moved = data.item.copy()
    moved[later] = np.random.default_rng(0).integers(0, data.n_items, int(later.sum()))
    assert not np.array_equal(moved, data.item)
    np.testing.assert_allclose(
        teacher_item_factors(dataclasses.replace(data, item=moved), als, seed=0), factors, atol=1e-5
    )

    recipe = _recipe(data)
    assert isinstance(recipe, InBatchRecipe)
    recipe.teacher = factors
    _, _, labels = recipe.batch("train", np.arange(16), np.random.default_rng(0))
    positives = data.item[recipe.examples["train"][:16]]
    np.testing.assert_array_equal(labels["teacher"].numpy(), factors[positives])
    # the objective adds the distillation term only with a weight
    user, item = torch.randn(16, 4), torch.randn(16 + 4, 4)
    plain = InfoNceObjective(0.08, 0.1, 0.5)
    distilled = InfoNceObjective(0.08, 0.1, 0.5, distillation_weight=2.0)
    unit_user = torch.nn.functional.normalize(user, dim=1)
    unit_item = torch.nn.functional.normalize(item, dim=1)
    gap = distilled(unit_user, unit_item, labels) - plain(unit_user, unit_item, labels)
    from dc003.model.losses import relational_distillation_loss

    expected = 2.0 * relational_distillation_loss(unit_item[:16], labels["teacher"], 0.1)
    assert gap.item() == pytest.approx(expected.item(), rel=1e-5) and gap.item() > 0


@pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU path")
def test_cpu_phases_run_with_deterministic_algorithms() -> None:
    from dc003.train.run import _device

    before, threads = torch.are_deterministic_algorithms_enabled(), torch.get_num_threads()
    try:
        torch.use_deterministic_algorithms(False)
        assert _device().type == "cpu"
        # threaded reductions otherwise make two runs of a phase differ from the first step on
        assert torch.are_deterministic_algorithms_enabled()
    finally:
        torch.use_deterministic_algorithms(before)
        torch.set_num_threads(threads)


def test_the_loss_trend_of_a_phase_that_samples_its_epochs_is_judged_on_fixed_val_examples() -> None:
    """Epoch means over different draws of ``examples_per_epoch`` train examples differ by the draw (the
    generator's small scale: phase 3's rose while its val loss fell); such a phase is judged on the val
    loss after each epoch, a phase over all its examples on its epoch means."""
    from dc003.train.archcheck import loss_trend
    from dc003.train.report import phase_losses

    epochs = [{"train/epoch_loss": 8.12, "val/loss": 8.513}, {"train/epoch_loss": 8.15, "val/loss": 8.509}]
    base = {"phase": "phase_3", "initial_val_loss": None, "step_loss_head": 9.0, "step_loss_tail": 8.0}
    sampled = {**base, "settings": {"examples_per_epoch": 1024}, "epochs": epochs}
    full = {**base, "settings": {"examples_per_epoch": 0}, "epochs": epochs}
    assert phase_losses(sampled) == ([8.513, 8.509], "val")
    assert phase_losses(full) == ([8.12, 8.15], "train")
    trend = loss_trend({"sampled": phase_losses(sampled)[0], "full": phase_losses(full)[0]})
    assert trend["phases"]["sampled"]["decreasing"] and not trend["phases"]["full"]["decreasing"]
    # a sampled phase without a val loss every epoch keeps its epoch means
    no_val = {**sampled, "epochs": [epochs[0], {"train/epoch_loss": 8.15}]}
    assert phase_losses(no_val) == ([8.12, 8.15], "train")
    # one epoch: the val examples before and after it; no val at all: the first and last tenth of its steps
    one = {**full, "initial_val_loss": 8.6, "epochs": epochs[:1]}
    assert phase_losses(one) == ([8.6, 8.513], "val before / after")
    assert phase_losses({**one, "initial_val_loss": None}) == ([9.0, 8.0], "steps")
