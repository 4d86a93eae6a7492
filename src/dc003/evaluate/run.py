"""The ``evaluate`` stage: the EMA checkpoint and every baseline ranked over the whole catalogue for every
test user, scored side by side; then the plots and the model card.

Two-tower scoring is the one the model serves with: user and item embeddings are L2-normalised by the
towers, so their inner product is the cosine the model trains with (the temperature scales every score
alike and cannot change an order), plus the popularity prior of params ``serving`` (extra coordinates
of the vectors, as the FAISS index holds them: :mod:`dc003.scoring.serving_score`); ``prior_sweep`` records
the val and test weeks for a grid of prior strengths. Queries are built
as in training validation (:mod:`dc003.train.validation`): features as of the test cutoff, the history
before the user's first test purchase. Baselines see only interactions strictly before the test cutoff
(:mod:`dc003.scoring.baselines` enforces the cut itself). With ``exclude_purchased`` every model,
the oracle included, skips the items the user bought before the cutoff.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dc003.io import read_json, write_json, write_text

if TYPE_CHECKING:
    import scipy.sparse as sp

    from dc003.contracts.thresholds import Threshold
    from dc003.data.synthetic_config import Scale
    from dc003.evaluate.segments import Segments
    from dc003.model.two_tower import TwoTowerModel
    from dc003.params.deploy import ServingParams
    from dc003.params.evaluate import EvaluateParams
    from dc003.train.data import TrainingData
    from dc003.train.validation import RetrievalSet

RESULTS_FILE = "evaluation_results.json"
CURVE_FILE = "recall_at_k.json"
TRAINING_CURVES_PNG = "training_curves.png"
RECALL_PNG = "recall_at_k.png"
CARD_FILE = "MODEL_CARD.md"
ORACLE_FILE = "oracle.parquet"


@dataclass(frozen=True)
class EvaluatePaths:
    checkpoint: Path  # the EMA model (best_model.pt)
    dataset_dir: Path
    text_dir: Path
    training_metrics: Path
    metrics_dir: Path  # evaluation_results.json, recall_at_k.json
    plots_dir: Path
    reports_dir: Path  # MODEL_CARD.md


def purchased_before(data: TrainingData, users: np.ndarray, cutoff_day: int) -> sp.csr_matrix:
    """``len(users) x n_items``: 1 where the user bought the item before ``cutoff_day``."""
    from dc003.evaluate.segments import bought_before

    return bought_before(
        data.user, data.item, data.day, cutoff_day=cutoff_day, users=users, n_items=data.n_items
    )


def oracle_top_k(
    path: Path, users: np.ndarray, n_items: int, k: int, exclude: sp.csr_matrix | None
) -> tuple[np.ndarray, int]:
    """The generator's true-preference ranking as a top-k matrix; ``(topk, users without a ranking)``.

    Excluded items are dropped and the rest move up; rows run short (``-1``) where the oracle file
    holds fewer than ``k`` items for a user.
    """
    import pyarrow.parquet as pq

    tab = pq.read_table(path, columns=["user_idx", "item_idx", "rank"])
    u = tab.column("user_idx").to_numpy().astype(np.int64)
    i = tab.column("item_idx").to_numpy().astype(np.int64)
    r = tab.column("rank").to_numpy().astype(np.int64)
    row_of = np.full(max(int(u.max(initial=-1)), int(users.max(initial=-1))) + 1, -1, dtype=np.int64)
    row_of[users] = np.arange(users.size)
    rows = row_of[u]
    ok = rows >= 0
    rows, i, r = rows[ok], i[ok], r[ok]
    if exclude is not None and exclude.nnz:
        ex = exclude.tocoo()
        keep = ~np.isin(rows * n_items + i, ex.row.astype(np.int64) * n_items + ex.col)
        rows, i, r = rows[keep], i[keep], r[keep]
    order = np.lexsort((i, r, rows))
    rows, i = rows[order], i[order]
    pos = np.arange(rows.size) - np.searchsorted(rows, rows)  # place within the user's remaining list
    take = pos < k
    out = np.full((users.size, min(k, n_items)), -1, dtype=np.int32)
    out[rows[take], pos[take]] = i[take]
    missing = int(users.size - np.unique(rows).size)
    return out, missing


def two_tower_top_k(
    model: TwoTowerModel,
    data: TrainingData,
    rset: RetrievalSet,
    k: int,
    exclude: sp.csr_matrix | None,
    serving: ServingParams,
) -> np.ndarray:
    from dc003.scoring.serving_score import served_top_k

    queries, items, bonus = two_tower_vectors(model, data, rset, serving)
    return served_top_k(queries, items, k, serving, model.config.temperature, exclude=exclude, bonus=bonus)


def two_tower_vectors(
    model: TwoTowerModel, data: TrainingData, rset: RetrievalSet, serving: ServingParams
) -> tuple[np.ndarray, np.ndarray, sp.csr_matrix | None]:
    """``(queries, item vectors, repurchase bonus)`` as the serving index holds them
    (:mod:`dc003.scoring.serving_score`): inner product plus bonus is the serving score."""
    return serving_vectors(model, data, rset, *_embeddings(model, data, rset, serving), serving)


def serving_vectors(
    model: TwoTowerModel,
    data: TrainingData,
    rset: RetrievalSet,
    users: np.ndarray,
    items: np.ndarray,
    numerical: np.ndarray,
    serving: ServingParams,
    max_len: int | None = None,
) -> tuple[np.ndarray, np.ndarray, sp.csr_matrix | None]:
    """The serving score's parts from the towers' embeddings as of ``rset``'s split: the popularity prior
    (never-sold items at ``new_item_quantile``) as index coordinates, the repurchase bonus over each
    query's history (the one the user tower read: the last ``max_len``, by default the model's)."""
    from dc003.scoring.serving_score import configured_prior, index_vectors, query_vectors, repurchase_bonus
    from dc003.train.batches import history_window

    tau = model.config.temperature
    prior, weight = configured_prior(numerical, model.config, serving, data.never_sold(rset.split))
    seen = model.config.user_tower.sequence.max_len if max_len is None else max_len
    hist, pad = history_window(data, rset.query_rows, seen)
    bonus = repurchase_bonus(hist, (~pad).sum(axis=1), data.n_items, serving.repurchase_boost, tau)
    return query_vectors(users, weight), index_vectors(items, prior), bonus


def _embeddings(
    model: TwoTowerModel, data: TrainingData, rset: RetrievalSet, serving: ServingParams
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(user embeddings, item embeddings, the items' raw numerical inputs)`` as of ``rset``'s split, the
    catalogue as served (:func:`dc003.train.validation.served_catalogue`)."""
    import torch

    from dc003.train.validation import served_catalogue, stored_token_user_embeddings

    items, numerical = served_catalogue(model, data, rset.split, serving)  # stores the history tokens
    max_len = model.config.user_tower.sequence.max_len
    users = stored_token_user_embeddings(
        model, data, rset.split, rset.query_rows, max_len, torch.device("cpu")
    )
    return np.asarray(users), items, numerical


TRUNCATION = (0, 1, 5, 15, 50)  # purchases the two-tower may see in the history-truncation probe


def history_truncation(
    model: TwoTowerModel,
    data: TrainingData,
    serving: ServingParams,
    min_purchases: int = 16,
    *,
    max_users: int = 0,
    seed: int = 0,
) -> dict[str, Any]:
    """The two-tower on the test users with at least ``min_purchases`` purchases before the cutoff, when it
    sees only their last ``n`` purchases (``n`` in :data:`TRUNCATION`; the profile features unchanged): one
    group of customers, so the rows differ only by how much history the model reads."""
    import torch

    from dc003.evaluate.segments import K, segments_before
    from dc003.scoring.metrics import ndcg_at_k, recall_at_k
    from dc003.scoring.serving_score import served_top_k
    from dc003.train.validation import RetrievalSet, retrieval_set, stored_token_user_embeddings

    full = retrieval_set(data, "test", max_users, seed)
    cutoff = data.cutoffs["test"]
    segs = segments_before(
        data.user, data.item, data.day, cutoff_day=cutoff, users=full.users, n_items=data.n_items
    )
    assert segs.user_purchases is not None
    keep = np.flatnonzero(segs.user_purchases >= min_purchases)
    rset = RetrievalSet("test", full.query_rows[keep], full.users[keep], [full.truth[i] for i in keep])
    _, items, numerical = _embeddings(model, data, rset, serving)  # stores the test history tokens
    rows = []
    for seen in TRUNCATION:
        users = stored_token_user_embeddings(model, data, "test", rset.query_rows, seen, torch.device("cpu"))
        queries, vecs, bonus = serving_vectors(model, data, rset, users, items, numerical, serving, seen)
        top = served_top_k(queries, vecs, K, serving, model.config.temperature, bonus=bonus)
        rows.append({
            "seen": seen,
            "recall_50": float(np.nanmean(recall_at_k(top, rset.truth, K))) if keep.size else None,
            "ndcg_10": float(np.nanmean(ndcg_at_k(top, rset.truth, 10))) if keep.size else None,
        })  # fmt: skip
    return {"users": int(keep.size), "min_purchases": min_purchases, "rows": rows}


# each serving knob swept with the others at the run's values (null = off)
SWEEP_GRIDS: dict[str, tuple[float | None, ...]] = {
    "popularity_prior": (0.0, 0.25, 0.5, 0.75, 1.0),
    "new_item_quantile": (None, 0.25, 0.5, 0.75, 0.85, 0.9, 0.95),
    "repurchase_boost": (0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0),
    "tail_prior": (None, 0.0, 0.1, 0.15, 0.25, 0.35),
}


# each serving knob's rule (params.yaml states it) as far as an evaluation can apply it by itself
SWEEP_RULES: dict[str, str] = {
    "popularity_prior": "the best val recall@50 of the served list",
    "new_item_quantile": (
        "the smallest value whose val cold-item degradation (1 - recall@50 of the never-sold items' "
        "purchases / of the others') meets the contract's cold-start bound ({bound}) at the upper end of its "
        "{confidence} bootstrap interval (a week holds few purchases of never-sold items: a value that meets "
        "the bound on its point estimate alone may well miss it the next week)"
    ),
    "repurchase_boost": "the best val recall@50 of the served list",
}


def rule_picks(sweep: dict[str, Any], cold_bound: Threshold) -> dict[str, dict[str, Any]]:
    """What each knob's rule (:data:`SWEEP_RULES`) picks on the val rows of :func:`serving_sweep`'s result,
    beside the value this run used: ``{knob: {rule, picks, this_run, agrees}}``; ``picks`` is ``None``
    (with a ``why``) when no value of the grid satisfies the rule. Ties go to the first value in the grid.
    A knob whose rule needs more than the evaluation has (the tail prior's needs the synthetic ceiling)
    is left out. On data unlike the default the params' values need not be what the rules pick: the
    model card says so."""
    out: dict[str, dict[str, Any]] = {}
    for name, rule in SWEEP_RULES.items():
        rows = sweep["knobs"].get(name, {}).get("val")
        if not rows:
            continue
        picks, why = None, None
        if name == "new_item_quantile":
            high = "cold_items_degradation_high"
            met = [r[name] for r in rows if r.get(high) is not None and cold_bound.passes(r[high])]
            if met:
                picks = met[0]
            elif all(r["cold_items_recall_50"] is None for r in rows):
                why = "no purchase of a never-sold item in the val week"
            else:
                why = f"no value of the grid meets {cold_bound.text} at its interval's upper end"
        else:
            scored = [r for r in rows if r["recall_50"] is not None]
            if scored:
                picks = max(scored, key=lambda r: r["recall_50"])[name]  # max keeps the first of ties
            else:
                why = "no val recall@50"
        chosen = sweep["chosen"][name]
        agrees = why is None and picks == chosen
        out[name] = {
            "rule": rule.format(bound=cold_bound.text, confidence=f"{sweep.get('confidence', 0.95):.0%}"),
            "picks": picks,
            "this_run": chosen,
            "agrees": agrees,
        }
        if why is not None:
            out[name]["why"] = why
    return out


def serving_sweep(
    model: TwoTowerModel,
    data: TrainingData,
    serving: ServingParams,
    grids: dict[str, tuple[float | None, ...]] | None = None,
    *,
    max_users: int = 0,
    seed: int = 0,
    n_boot: int = 1000,
    confidence: float = 0.95,
) -> dict[str, Any]:
    """The two-tower on the val and the test week for each value of each serving knob (the others at
    the run's values): recall@50, NDCG@10, coverage@50, recall@50 of the purchases of never-sold items
    and of repurchases, and the never-sold items' degradation with the upper end of its bootstrap
    interval (``n_boot`` resamples, ``confidence``). Knobs are chosen on the val week; the test rows show
    whether it held."""
    from dc003.evaluate.segments import K, item_degradation, segments_before, split_repurchases, split_truth
    from dc003.scoring.metrics import coverage_at_k, ndcg_at_k, recall_at_k
    from dc003.scoring.serving_score import served_top_k
    from dc003.train.validation import retrieval_set, served_catalogue

    def mean(values: np.ndarray) -> float | None:
        finite = values[~np.isnan(values)]
        return float(finite.mean()) if finite.size else None

    def degradation(top: np.ndarray, cold: list[np.ndarray], warm: list[np.ndarray]) -> dict[str, Any]:
        rec = item_degradation(top, cold, warm, n_boot=n_boot, alpha=1.0 - confidence, seed=seed)
        return {"cold_items_degradation": rec["mean"], "cold_items_degradation_high": rec["ci_high"]}

    grids = SWEEP_GRIDS if grids is None else grids
    knobs: dict[str, dict[str, list[dict[str, Any]]]] = {name: {} for name in grids}
    for split in ("val", "test"):
        rset = retrieval_set(data, split, max_users, seed)
        users, items, numerical = _embeddings(model, data, rset, serving)
        segs = segments_before(
            data.user, data.item, data.day, cutoff_day=data.cutoffs[split], users=rset.users,
            n_items=data.n_items,
        )  # fmt: skip
        cold, warm = split_truth(rset.truth, segs.cold_item)
        assert segs.bought is not None
        again, _ = split_repurchases(rset.truth, segs.bought)
        for name, grid in grids.items():
            rows = []
            for value in grid:
                knob = serving.model_copy(update={name: value})
                vecs, num = (items, numerical)
                if name == "new_item_quantile":  # the never-sold items' tower inputs change with it
                    vecs, num = served_catalogue(model, data, split, knob)
                queries, index, bonus = serving_vectors(model, data, rset, users, vecs, num, knob)
                top = served_top_k(queries, index, K, knob, model.config.temperature, bonus=bonus)
                rows.append({
                    name: value,
                    "recall_50": mean(recall_at_k(top, rset.truth, K)),
                    "ndcg_10": mean(ndcg_at_k(top, rset.truth, 10)),
                    "coverage_50": coverage_at_k(top, data.n_items, K),
                    "cold_items_recall_50": mean(recall_at_k(top, cold, K)),
                    "warm_items_recall_50": mean(recall_at_k(top, warm, K)),
                    "repurchases_recall_50": mean(recall_at_k(top, again, K)),
                    **degradation(top, cold, warm),
                })  # fmt: skip
            knobs[name][split] = rows
    chosen = {name: getattr(serving, name) for name in grids}
    return {"chosen": chosen, "floor": serving.prior_floor, "confidence": confidence, "knobs": knobs}


def baseline_rankers(params: EvaluateParams, seed: int) -> dict[str, Callable[..., np.ndarray]]:
    """Each baseline as ``f(user, item, day, *, n_items, cutoff_day, users, k, exclude)``."""
    from functools import partial

    from dc003.scoring import baselines as b

    return {
        "popularity": b.popularity_last_week,
        "trending": partial(
            b.trending, weeks=params.trending_weeks, half_life_days=params.trending_half_life_days
        ),
        "repurchase": partial(b.repurchase, half_life_days=params.repurchase_half_life_days),
        "als": partial(b.als, **params.als.model_dump(), seed=seed, num_threads=1),
    }


def rank_all(
    model: TwoTowerModel,
    data: TrainingData,
    params: EvaluateParams,
    serving: ServingParams,
    seed: int,
    oracle_path: Path | None,
) -> tuple[RetrievalSet, dict[str, np.ndarray], dict[str, Any]]:
    """Top-``max_k`` lists of the two-tower, each baseline and (where there is one) the oracle."""
    from dc003.train.validation import retrieval_set

    rset = retrieval_set(data, "test", params.max_users, seed)
    cutoff = data.cutoffs["test"]
    exclude = purchased_before(data, rset.users, cutoff) if params.exclude_purchased else None
    k = params.max_k
    seconds: dict[str, float] = {}
    tops: dict[str, np.ndarray] = {}
    started = time.perf_counter()
    tops["two_tower"] = two_tower_top_k(model, data, rset, k, exclude, serving)
    seconds["two_tower"] = time.perf_counter() - started
    for name, ranker in baseline_rankers(params, seed).items():
        started = time.perf_counter()
        tops[name] = ranker(
            data.user, data.item, data.day, n_items=data.n_items, cutoff_day=cutoff, users=rset.users,
            k=k, exclude=exclude,
        )  # fmt: skip
        seconds[name] = time.perf_counter() - started
    info: dict[str, Any] = {"seconds": {}, "oracle_users_missing": None}
    if oracle_path is not None and oracle_path.is_file():
        tops["oracle"], info["oracle_users_missing"] = oracle_top_k(
            oracle_path, rset.users, data.n_items, k, exclude
        )
    info["seconds"] = {name: round(s, 3) for name, s in seconds.items()}
    info["excluded_pairs"] = None if exclude is None else int(exclude.nnz)
    return rset, tops, info


def taste_probe(
    model: TwoTowerModel,
    data: TrainingData,
    rset: RetrievalSet,
    segs: Segments,
    serving: ServingParams,
    dataset_dir: Path,
    scale: Scale,
    seed: int,
) -> dict[str, Any]:
    """How much of the generator's taste of each test buyer the two-tower's user embedding holds: the
    individual part (what only the purchases reveal) and the feature part, overall and by the purchases
    before the cutoff (:mod:`dc003.data.synthetic_probe`)."""
    import polars as pl

    from dc003.data.synthetic_probe import embedding_probe, taste_parts

    users = _embeddings(model, data, rset, serving)[0]
    ids = pl.read_parquet(dataset_dir / "users_test.parquet", columns=["user_idx", "customer_id"])
    customer = dict(zip(ids["user_idx"].to_list(), ids["customer_id"].to_list(), strict=True))
    bands = {"cold_users": segs.cold_users, **segs.history_bands()}
    probe = embedding_probe(taste_parts(scale, seed), [customer[int(u)] for u in rset.users], users, bands)
    return {"scale": scale, "seed": seed, **probe}


def evaluate_checkpoint(
    checkpoint: Path,
    dataset_dir: Path,
    text_dir: Path,
    params: EvaluateParams,
    serving: ServingParams,
    seed: int,
    synthetic_scale: Scale | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Rank and score every model on the test split: the ``evaluation_results.json`` record, and the
    checkpoint's own config (the model card's; the checkpoint is read once). ``synthetic_scale``: the
    dataset is the generator's at this scale and ``seed``, so the user embeddings are probed for its
    customers' taste (:func:`taste_probe`)."""
    from dc003.evaluate.compare import assemble, paired_differences, score_model
    from dc003.evaluate.segments import segments_before, tier_summary
    from dc003.model.checkpoint import load_model
    from dc003.scoring.serving_score import describe
    from dc003.text.embed import load_item_text
    from dc003.train.data import SPLIT_CODES, load_training_data

    started = time.perf_counter()
    model, ckpt = load_model(checkpoint)
    data = load_training_data(dataset_dir, load_item_text(text_dir), model.config)
    oracle_path = dataset_dir / ORACLE_FILE
    rset, tops, info = rank_all(model, data, params, serving, seed, oracle_path)
    cutoff = data.cutoffs["test"]
    segs = segments_before(
        data.user, data.item, data.day, cutoff_day=cutoff, users=rset.users, n_items=data.n_items
    )
    alpha = 1.0 - params.confidence
    scored = {}
    for name, top in tops.items():
        scored[name] = score_model(
            top, rset.truth, segs, n_items=data.n_items, item_category=data.item_category,
            n_categories=len(data.category_names), max_k=params.max_k, n_boot=params.bootstrap_samples,
            alpha=alpha, seed=seed,
        )  # fmt: skip
    results = assemble(scored, data.category_names)
    results["paired"] = paired_differences(
        tops, rset.truth, n_boot=params.bootstrap_samples, alpha=alpha, seed=seed
    )
    n = params.max_users
    results["serving_sweep"] = serving_sweep(
        model, data, serving, max_users=n, seed=seed, n_boot=params.bootstrap_samples,
        confidence=params.confidence,
    )  # fmt: skip
    results["history_truncation"] = history_truncation(model, data, serving, max_users=n, seed=seed)
    if synthetic_scale is not None:
        probe = taste_probe(model, data, rset, segs, serving, dataset_dir, synthetic_scale, seed)
        results["taste_probe"] = probe
    results["setup"] = {
        "split": "test",
        "cutoff_day": data.cutoffs["test"],
        "n_items": data.n_items,
        "buyers": int(np.unique(data.user[data.split == SPLIT_CODES["test"]]).size),
        "max_users": params.max_users,
        "ranking": "full catalogue, no sampled negatives",
        "similarity": describe(serving, model.config.temperature),
        "popularity_prior": serving.popularity_prior,
        "new_item_quantile": serving.new_item_quantile,
        "repurchase_boost": serving.repurchase_boost,
        "tail_prior": serving.tail_prior,
        "head_k": serving.head_k,
        "exclude_purchased": params.exclude_purchased,
        "excluded_pairs": info["excluded_pairs"],
        "bootstrap_samples": params.bootstrap_samples,
        "confidence": params.confidence,
        "seed": seed,
        "cold_users": int(segs.cold_users.sum()),
        "cold_item_purchases": int(sum(int(segs.cold_item[t].sum()) for t in rset.truth)),
        "popularity_tiers": None if segs.item_purchases is None else tier_summary(segs.item_purchases),
        "oracle": "oracle" in tops,
        "oracle_users_missing": info["oracle_users_missing"],
        "checkpoint": {"path": str(checkpoint), "phase": ckpt.get("phase")},
        "rank_seconds": info["seconds"],
        "seconds": round(time.perf_counter() - started, 3),
    }
    return results, ckpt["config"]


def run_evaluate(
    seed: int,
    params: EvaluateParams,
    serving: ServingParams,
    paths: EvaluatePaths,
    *,
    dc003_path: Path,
    synthetic_scale: Scale | None = None,
) -> dict[str, Any]:
    """The whole stage: results JSON, recall@k data, both plots and the model card (``synthetic_scale``:
    as in :func:`evaluate_checkpoint`)."""
    from dc003.contracts import load_dc003
    from dc003.evaluate.card import CardContext, render_model_card
    from dc003.evaluate.compare import curve_rows
    from dc003.evaluate.plots import plot_recall_at_k, plot_training_curves

    results, config = evaluate_checkpoint(
        paths.checkpoint, paths.dataset_dir, paths.text_dir, params, serving, seed, synthetic_scale
    )
    contract = load_dc003(dc003_path)
    if results.get("serving_sweep"):
        bound = contract.inference_requirements.accuracy.cold_start_performance
        results["serving_sweep"]["rule_picks"] = rule_picks(results["serving_sweep"], bound)
    training = read_json(paths.training_metrics)
    paths.metrics_dir.mkdir(parents=True, exist_ok=True)
    write_json(paths.metrics_dir / RESULTS_FILE, results)
    write_json(paths.metrics_dir / CURVE_FILE, curve_rows(results))
    paths.plots_dir.mkdir(parents=True, exist_ok=True)
    plot_training_curves(training, paths.plots_dir / TRAINING_CURVES_PNG)
    plot_recall_at_k(results, paths.plots_dir / RECALL_PNG)
    context = CardContext(
        contract=contract,
        manifest=read_json(paths.dataset_dir / "manifest.json"),
        vocab=read_json(paths.dataset_dir / "vocab.json"),
        model_config=config,
        training=training,
        plots={
            "training_curves": str(paths.plots_dir / TRAINING_CURVES_PNG),
            "recall_at_k": str(paths.plots_dir / RECALL_PNG),
        },
    )
    paths.reports_dir.mkdir(parents=True, exist_ok=True)
    write_text(paths.reports_dir / CARD_FILE, render_model_card(results, context))
    return results
