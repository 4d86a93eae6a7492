"""Every model scored on the same test users, side by side: the body of ``evaluation_results.json``.

``models.<name>.<metric>`` holds PLAIN numbers (the point estimates the gates and ``dvc metrics show``
read); the bootstrap intervals sit under ``intervals.<name>.<metric>`` and the per-segment tables under
``segments.<name>``. An undefined value (no cold user in the split, say) is ``null``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from dc003.evaluate.segments import (
    Segments,
    item_segments,
    split_repurchases,
    split_tiers,
    truth_parts,
    worst_degradation,
)

HEADLINE = ("recall_50", "ndcg_10", "map_12", "coverage_50", "cold_start_degradation")
# the fields of every recall@k row, listed by dvc.yaml's top-level `recall_at_k` plot: a model absent
# from a run (the oracle on real data) is written as null, because DVC rejects a plot whose field is missing
CURVE_MODELS = ("two_tower", "popularity", "trending", "repurchase", "als", "oracle")


def score_model(
    topk: np.ndarray,
    truth: Sequence[np.ndarray],
    segments: Segments,
    *,
    n_items: int,
    item_category: np.ndarray,
    n_categories: int,
    max_k: int,
    n_boot: int,
    alpha: float,
    seed: int,
) -> dict[str, Any]:
    """One model's full record: :func:`dc003.scoring.metrics.evaluate_ranking` plus the item segments."""
    from dc003.scoring.metrics import evaluate_ranking

    full = evaluate_ranking(
        topk,
        truth,
        n_items=n_items,
        item_category=item_category,
        n_categories=n_categories,
        segments={
            "warm_users": segments.warm_users,
            "cold_users": segments.cold_users,
            **segments.history_bands(),
        },
        ks_curve=range(1, max_k + 1),
        n_boot=n_boot,
        alpha=alpha,
        seed=seed,
    )
    full["item_segments"] = item_segments(
        topk, truth, segments.cold_item, n_boot=n_boot, alpha=alpha, seed=seed
    )
    if segments.bought is not None:
        again, new = split_repurchases(truth, segments.bought)
        full["purchase_segments"] = truth_parts(
            topk, {"repurchases": again, "new_purchases": new}, n_boot=n_boot, alpha=alpha, seed=seed
        )
    tier = segments.tier
    if tier is not None:
        full["popularity_segments"] = truth_parts(
            topk, split_tiers(truth, tier), n_boot=n_boot, alpha=alpha, seed=seed
        )
    return full


def _cold_start(full: dict[str, Any]) -> dict[str, Any]:
    users = full.get("cold_start_degradation", {}).get("recall_50", {})
    items = full["item_segments"]["degradation"]
    return {
        "cold_users": users.get("mean"),
        "cold_items": items.get("mean"),
        "worst": worst_degradation(users.get("mean"), items.get("mean")),
        "intervals": {
            "cold_users": {"low": users.get("ci_low"), "high": users.get("ci_high")},
            "cold_items": {"low": items.get("ci_low"), "high": items.get("ci_high")},
        },
    }


def assemble(scored: Mapping[str, dict[str, Any]], category_names: Sequence[str]) -> dict[str, Any]:
    """The comparison over every scored model (insertion order kept: two-tower first)."""
    models: dict[str, dict[str, float | None]] = {}
    intervals: dict[str, dict[str, dict[str, float | None]]] = {}
    segments: dict[str, dict[str, Any]] = {}
    cold: dict[str, dict[str, Any]] = {}
    mix: dict[str, dict[str, Any]] = {}
    curves: dict[str, list[float | None]] = {}
    ks: list[int] = []
    for name, full in scored.items():
        cs = _cold_start(full)
        cold[name] = cs
        models[name] = {m: full[m]["mean"] for m in HEADLINE[:4]}
        models[name]["cold_start_degradation"] = cs["worst"]
        intervals[name] = {m: {"low": full[m]["ci_low"], "high": full[m]["ci_high"]} for m in HEADLINE[:4]}
        segments[name] = {
            **full.get("segments", {}),
            **{k: v for k, v in full["item_segments"].items() if k != "degradation"},
            **full.get("purchase_segments", {}),
            **full.get("popularity_segments", {}),
        }
        if "category_mix" in full:
            mix[name] = full["category_mix"]
        ks = full["recall_curve"]["k"]
        curves[name] = full["recall_curve"]["recall"]
    first = next(iter(scored.values()), {})
    return {
        "models": models,
        "intervals": intervals,
        "cold_start": cold,
        "segments": segments,
        "category_mix": {"categories": list(category_names), "models": mix},
        "recall_at_k": {"k": ks, "models": curves},
        "users": {
            "n_users": first.get("n_users"),
            "n_users_evaluated": first.get("n_users_evaluated"),
            "n_users_skipped": first.get("n_users_skipped"),
        },
    }


PAIRED = ("recall_50", "ndcg_10")


def paired_differences(
    tops: Mapping[str, np.ndarray],
    truth: Sequence[np.ndarray],
    *,
    reference: str = "two_tower",
    n_boot: int,
    alpha: float,
    seed: int,
) -> dict[str, dict[str, dict[str, float | None]]]:
    """``reference`` minus every other model on :data:`PAIRED`, per user, with a paired bootstrap interval.

    Both models are scored on the same resampled users, so the interval is of the difference itself: it
    is much narrower than comparing the two models' own intervals, and "does the two-tower beat X" is
    read off its sign (an interval that straddles 0 is no clear difference).
    """
    from dc003.scoring.metrics import bootstrap_ci, ci_record, ndcg_at_k, recall_at_k

    def per_user(top: np.ndarray) -> dict[str, np.ndarray]:
        return {"recall_50": recall_at_k(top, truth, 50), "ndcg_10": ndcg_at_k(top, truth, 10)}

    ref = per_user(tops[reference])
    out: dict[str, dict[str, dict[str, float | None]]] = {}
    for name, top in tops.items():
        if name == reference:
            continue
        other = per_user(top)
        out[name] = {}
        for m in PAIRED:
            c = ci_record(bootstrap_ci(ref[m] - other[m], n_boot=n_boot, alpha=alpha, seed=seed))
            out[name][m] = {"difference": c["mean"], "low": c["ci_low"], "high": c["ci_high"]}
    return out


def paired_verdict(d: Mapping[str, float | None]) -> str:
    """How the reference compares, from the paired interval of its difference."""
    low, high = d.get("low"), d.get("high")
    if low is None or high is None:
        return "n/a"
    if low > 0:
        return "two-tower ahead"
    if high < 0:
        return "two-tower behind"
    return "no clear difference"


def curve_rows(results: dict[str, Any]) -> list[dict[str, float | int | None]]:
    """The recall@k curves as DVC plot rows: ``{"k": k, "<model>": recall, ...}`` per k (every
    :data:`CURVE_MODELS` field present, null for a model this run did not score)."""
    curve = results["recall_at_k"]
    names = list(dict.fromkeys([*CURVE_MODELS, *curve["models"]]))
    return [
        {"k": k, **{n: curve["models"][n][i] if n in curve["models"] else None for n in names}}
        for i, k in enumerate(curve["k"])
    ]


def table_rows(results: dict[str, Any]) -> list[list[str]]:
    """One row per model: name, then each headline metric as ``value [low, high]``."""
    rows = []
    for name in results["models"]:
        row = [name]
        for m in HEADLINE:
            row.append(format_metric(results, name, m))
        rows.append(row)
    return rows


def format_metric(results: dict[str, Any], name: str, metric: str) -> str:
    value = results["models"][name][metric]
    if value is None:
        return "n/a"
    if metric == "cold_start_degradation":
        cs = results["cold_start"][name]
        parts = [f"{_num(cs[p])} {p.replace('cold_', '')}" for p in ("cold_users", "cold_items")]
        return f"{value:.4f} ({', '.join(parts)})"
    ci = results["intervals"][name][metric]
    if ci["low"] is None:
        return f"{value:.4f}"
    return f"{value:.4f} [{ci['low']:.4f}, {ci['high']:.4f}]"


def _num(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.3f}"
