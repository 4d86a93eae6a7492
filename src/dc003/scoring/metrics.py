"""Offline ranking metrics over top-k lists with binary relevance, and their bootstrap intervals.

Conventions shared by every function here:

- ``topk`` is an ``(U, K)`` integer array of ranked item indices, best first, as produced by
  :mod:`dc003.scoring.ranking`; ``-1`` marks an empty slot and is never a hit nor a covered item.
  The order is taken as given (ties were the ranking's concern). An item repeated within a row
  counts once, at its first position.
- ``truth`` is a sequence of integer arrays, one per ``topk`` row: the items the user bought in
  the test window. Relevance is binary, so a duplicated truth item counts once.
- A user whose truth is empty cannot be scored: it is SKIPPED. Per-user arrays hold NaN for it and
  every mean leaves it out. With no user left, means are NaN.
- When ``k`` exceeds the number of columns of ``topk`` (a catalogue smaller than ``k``), all
  columns are used.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypedDict

import numpy as np

# bootstrap index draws are made in chunks of at most this many cells to bound memory
_BOOT_CELLS = 1 << 22
# coverage bootstrap: rows per item tested in one vectorised step before walking the rest
_COVERAGE_HEAD = 4


class _Boot(TypedDict):
    n_boot: int
    alpha: float
    seed: int


@dataclass(frozen=True)
class _Hits:
    hits: np.ndarray  # (U, w) bool: slot j of row u is the first occurrence of a truth item
    n_truth: np.ndarray  # (U,) distinct truth items per user; 0 means skipped
    truth_items: np.ndarray  # the items of the distinct (user, item) truth pairs


def _sorted_unique(a: np.ndarray) -> np.ndarray:
    """``np.unique`` by sorting: numpy 2.4's default hash path is ~30x slower on millions of ints."""
    s = np.sort(a.ravel())
    return s[np.r_[True, s[1:] != s[:-1]]] if s.size else s


def _check_k(k: int) -> int:
    if int(k) != k or k < 1:
        raise ValueError(f"k must be a positive integer (got {k})")
    return int(k)


def _as_topk(topk: np.ndarray) -> np.ndarray:
    arr = np.asarray(topk)
    if arr.ndim != 2 or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"topk must be a 2-D integer array (got {arr.dtype} {arr.shape})")
    return arr


def _hits(topk: np.ndarray, truth: Sequence[np.ndarray], width: int) -> _Hits:
    """Mark hits in the first ``width`` columns; one vectorised membership test for all users."""
    top = _as_topk(topk)[:, :width]
    n_users = top.shape[0]
    if len(truth) != n_users:
        raise ValueError(f"truth has {len(truth)} users but topk has {n_users} rows")
    arrays = [np.asarray(t).ravel() for t in truth]
    lengths = np.fromiter((a.size for a in arrays), dtype=np.int64, count=n_users)
    for a in arrays:
        if a.size and not np.issubdtype(a.dtype, np.integer):
            raise ValueError(f"truth items must be integers (got {a.dtype})")
    flat = np.concatenate(arrays).astype(np.int64) if n_users else np.empty(0, dtype=np.int64)
    if flat.size and flat.min() < 0:
        raise ValueError("truth items must be >= 0")
    # (user, item) pairs as one int64 code so a single sorted isin tests every row at once
    base = int(max(flat.max(initial=-1), top.max(initial=-1))) + 1
    codes = _sorted_unique(np.repeat(np.arange(n_users, dtype=np.int64), lengths) * base + flat)
    truth_users, truth_items = np.divmod(codes, base) if base else (codes, codes)
    n_truth = np.bincount(truth_users, minlength=n_users)

    valid = top >= 0
    # an item repeated in a row is a hit only where it first appears (as Kaggle's apk does)
    order = np.argsort(top, axis=1, kind="stable")
    srt = np.take_along_axis(top, order, axis=1)
    repeat_sorted = np.zeros_like(valid)
    repeat_sorted[:, 1:] = srt[:, 1:] == srt[:, :-1]
    first = np.ones_like(valid)
    np.put_along_axis(first, order, ~repeat_sorted, axis=1)
    row_codes = np.arange(n_users, dtype=np.int64)[:, None] * base + top
    hits = valid & first & np.isin(row_codes, codes)
    return _Hits(hits=hits, n_truth=n_truth, truth_items=truth_items)


def _per_user(values: np.ndarray, n_truth: np.ndarray) -> np.ndarray:
    out = np.full(n_truth.shape, np.nan)
    ok = n_truth > 0
    out[ok] = values[ok]
    return out


def _recall(h: _Hits, k: int) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return _per_user(h.hits[:, :k].sum(axis=1) / h.n_truth, h.n_truth)


def _ndcg(h: _Hits, k: int) -> np.ndarray:
    w = min(k, h.hits.shape[1])
    dcg = h.hits[:, :w] @ (1.0 / np.log2(np.arange(2, w + 2)))
    n_ideal = np.minimum(h.n_truth, k)
    ideal_gain = np.concatenate(([0.0], np.cumsum(1.0 / np.log2(np.arange(2, n_ideal.max(initial=0) + 2)))))
    with np.errstate(divide="ignore", invalid="ignore"):
        return _per_user(dcg / ideal_gain[n_ideal], h.n_truth)


def _map(h: _Hits, k: int) -> np.ndarray:
    hits = h.hits[:, :k]
    precision = np.cumsum(hits, axis=1) / np.arange(1, hits.shape[1] + 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ap = (precision * hits).sum(axis=1) / np.minimum(h.n_truth, k)
    return _per_user(ap, h.n_truth)


def _mean(values: np.ndarray) -> float:
    finite = values[~np.isnan(values)]
    return float(finite.mean()) if finite.size else math.nan


def recall_at_k(topk: np.ndarray, truth: Sequence[np.ndarray], k: int) -> np.ndarray:
    """Per-user ``|top-k ∩ truth| / |truth|``; NaN for a user with empty truth (skipped)."""
    k = _check_k(k)
    return _recall(_hits(topk, truth, k), k)


def ndcg_at_k(topk: np.ndarray, truth: Sequence[np.ndarray], k: int) -> np.ndarray:
    """Per-user NDCG@k: DCG with gain ``1/log2(rank+1)`` over IDCG of ``min(|truth|, k)`` hits.

    NaN for a user with empty truth (skipped).
    """
    k = _check_k(k)
    return _ndcg(_hits(topk, truth, k), k)


def map_at_k(topk: np.ndarray, truth: Sequence[np.ndarray], k: int = 12) -> np.ndarray:
    """Per-user average precision as in Kaggle H&M MAP@12: ``Σ_{i≤k} P(i)·rel(i) / min(|truth|, k)``.

    Average the result (NaN-aware) for MAP. NaN for a user with empty truth (skipped; Kaggle's
    ``apk`` would score it 0).
    """
    k = _check_k(k)
    return _map(_hits(topk, truth, k), k)


def coverage_at_k(topk: np.ndarray, n_items: int, k: int) -> float:
    """Distinct items among the rows' first ``k`` slots, over ``n_items``.

    Takes no truth, so it covers exactly the rows given; :func:`evaluate_ranking` passes only the
    users it evaluates (users with empty truth skipped). ``-1`` slots are not items.
    """
    k = _check_k(k)
    items = _as_topk(topk)[:, :k]
    items = items[items >= 0]
    if n_items < 1:
        raise ValueError(f"n_items must be >= 1 (got {n_items})")
    if items.size and items.max() >= n_items:
        raise ValueError(f"topk holds item {items.max()} but n_items is {n_items}")
    return float(_sorted_unique(items).size / n_items)


def recall_curve(
    topk: np.ndarray, truth: Sequence[np.ndarray], ks: Iterable[int] = range(1, 101)
) -> np.ndarray:
    """Mean recall@k for every k in ``ks``, from one cumulative pass over the hits.

    Users with empty truth are skipped (left out of every mean); NaN when none is left.
    """
    ks_arr = np.array([_check_k(k) for k in ks], dtype=np.int64)
    if ks_arr.size == 0:
        return np.empty(0)
    h = _hits(topk, truth, int(ks_arr.max()))
    return _curve(h, ks_arr)


def _curve(h: _Hits, ks: np.ndarray) -> np.ndarray:
    ok = h.n_truth > 0
    if not ok.any():
        return np.full(ks.shape, np.nan)
    width = h.hits.shape[1]
    cum = np.zeros((int(ok.sum()), width + 1))
    cum[:, 1:] = np.cumsum(h.hits[ok], axis=1)
    recall = cum[:, np.minimum(ks, width)] / h.n_truth[ok][:, None]
    return recall.mean(axis=0)


def _bootstrap_means(values: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Means of ``n_boot`` resamples (with replacement) of ``values``; chunked to bound memory."""
    n = values.size
    if n == 0:
        return np.full(n_boot, np.nan)
    out = np.empty(n_boot)
    chunk = max(1, _BOOT_CELLS // n)
    for start in range(0, n_boot, chunk):
        size = min(chunk, n_boot - start)
        out[start : start + size] = values[rng.integers(0, n, size=(size, n))].mean(axis=1)
    return out


def _check_boot(n_boot: int, alpha: float) -> None:
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1 (got {n_boot})")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1) (got {alpha})")


def _interval(boot: np.ndarray, alpha: float) -> tuple[float, float]:
    boot = boot[~np.isnan(boot)]
    if boot.size == 0:
        return math.nan, math.nan
    low, high = np.quantile(boot, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


def bootstrap_ci(
    values: np.ndarray, *, n_boot: int = 1000, alpha: float = 0.05, seed: int = 0
) -> tuple[float, float, float]:
    """``(mean, low, high)``: the mean over users and its percentile bootstrap interval.

    NaNs (skipped users) are ignored; all-NaN or empty input gives ``(nan, nan, nan)``.
    Deterministic for a given ``seed``.
    """
    _check_boot(n_boot, alpha)
    vals = np.asarray(values, dtype=np.float64).ravel()
    vals = vals[~np.isnan(vals)]
    if vals.size == 0:
        return math.nan, math.nan, math.nan
    low, high = _interval(_bootstrap_means(vals, n_boot, np.random.default_rng(seed)), alpha)
    return float(vals.mean()), low, high


def cold_start_degradation(cold: float, warm: float) -> float:
    """``1 - cold/warm``: the share of the warm-user metric lost on cold users; NaN when warm == 0."""
    if warm == 0 or math.isnan(warm) or math.isnan(cold):
        return math.nan
    return 1.0 - cold / warm


def cold_start_degradation_ci(
    cold_values: np.ndarray,
    warm_values: np.ndarray,
    *,
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> tuple[float, float, float]:
    """``(degradation, low, high)`` from per-user metric values of cold and of warm users.

    Both groups are resampled independently; a resample whose warm mean is 0 is dropped. NaNs
    (skipped users) are ignored.
    """
    _check_boot(n_boot, alpha)
    cold = np.asarray(cold_values, dtype=np.float64).ravel()
    warm = np.asarray(warm_values, dtype=np.float64).ravel()
    cold, warm = cold[~np.isnan(cold)], warm[~np.isnan(warm)]
    if cold.size == 0 or warm.size == 0:
        return math.nan, math.nan, math.nan
    point = cold_start_degradation(float(cold.mean()), float(warm.mean()))
    rng = np.random.default_rng(seed)
    boot_cold = _bootstrap_means(cold, n_boot, rng)
    boot_warm = _bootstrap_means(warm, n_boot, rng)
    with np.errstate(divide="ignore", invalid="ignore"):
        boot = np.where(boot_warm != 0, 1.0 - boot_cold / boot_warm, np.nan)
    low, high = _interval(boot, alpha)
    return point, low, high


def bootstrap_coverage_ci(
    topk: np.ndarray, n_items: int, k: int, *, n_boot: int = 1000, alpha: float = 0.05, seed: int = 0
) -> tuple[float, float, float]:
    """``(coverage@k, low, high)`` with rows (users) resampled with replacement.

    Coverage is not a mean over users, so each resample recounts the distinct items of the rows it
    drew. Covers exactly the rows given (see :func:`coverage_at_k`).
    """
    _check_boot(n_boot, alpha)
    value = coverage_at_k(topk, n_items, k)
    top = _as_topk(topk)[:, :k]
    n_rows = top.shape[0]
    if n_rows == 0:
        return value, value, value
    # Distinct (item, row) pairs grouped by item. An item is covered by a resample iff one of its
    # rows is drawn (each row is, with p ~ 0.63): so test every item's first few rows at once, then
    # walk the rare undecided items onward, instead of re-reading every slot of every drawn row.
    rows, cols = np.nonzero(top >= 0)
    pairs = _sorted_unique(top[rows, cols].astype(np.int64) * n_rows + rows)
    p_item, p_row = np.divmod(pairs, n_rows)
    start = np.flatnonzero(np.r_[True, p_item[1:] != p_item[:-1]]) if pairs.size else pairs
    end = np.r_[start[1:], pairs.size]
    head = np.full((_COVERAGE_HEAD, start.size), n_rows)  # n_rows: a sentinel row never drawn
    for j in range(_COVERAGE_HEAD):
        has = start + j < end
        head[j, has] = p_row[start[has] + j]
    more = end - start > _COVERAGE_HEAD
    rng = np.random.default_rng(seed)
    boot = np.empty(n_boot)
    for b in range(n_boot):
        drawn = np.zeros(n_rows + 1, dtype=bool)
        drawn[rng.integers(0, n_rows, size=n_rows)] = True
        hit = drawn.take(head).any(axis=0)
        covered = int(hit.sum())
        walk = ~hit & more
        cur, stop = start[walk] + _COVERAGE_HEAD, end[walk]  # next pair to look at, and its end
        while cur.size:
            found = drawn[p_row[cur]]
            covered += int(found.sum())
            cur, stop = cur[~found] + 1, stop[~found]
            left = cur < stop
            cur, stop = cur[left], stop[left]
        boot[b] = covered / n_items
    low, high = _interval(boot, alpha)
    return value, low, high


def category_distribution(topk: np.ndarray, item_category: np.ndarray, n_categories: int) -> np.ndarray:
    """Share of the filled slots of ``topk`` per category (sums to 1; all NaN when no slot is filled).

    ``topk`` may be any integer array of item indices (a top-k matrix, or a flat list of purchased
    items); ``-1`` slots are ignored. Takes no truth, so it counts exactly the rows given.
    """
    items = np.asarray(topk).ravel()
    items = items[items >= 0]
    cats = np.asarray(item_category)[items]
    if cats.size and (cats.min() < 0 or cats.max() >= n_categories):
        raise ValueError(f"item categories must lie in [0, {n_categories})")
    counts = np.bincount(cats, minlength=n_categories).astype(np.float64)
    total = counts.sum()
    return counts / total if total else np.full(n_categories, np.nan)


def distribution_distance(p: np.ndarray, q: np.ndarray) -> dict[str, float]:
    """Total variation distance and Jensen–Shannon divergence (base 2) between two distributions.

    Both lie in [0, 1]; 0 means identical. Inputs are normalised to sum 1 first; NaN in either, or
    an all-zero input, gives NaN for both.
    """
    pa, qa = np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64)
    if pa.shape != qa.shape or pa.ndim != 1:
        raise ValueError(f"p and q must be 1-D of one shape (got {pa.shape} and {qa.shape})")
    if np.isinf(pa).any() or np.isinf(qa).any() or (pa < 0).any() or (qa < 0).any():
        raise ValueError("p and q must be finite and non-negative")
    # an undefined distribution (NaN from category_distribution, or all zeros) has no distance
    if np.isnan(pa).any() or np.isnan(qa).any() or pa.sum() == 0 or qa.sum() == 0:
        return {"total_variation": math.nan, "jensen_shannon": math.nan}
    pa, qa = pa / pa.sum(), qa / qa.sum()
    mid = (pa + qa) / 2

    def kl(a: np.ndarray) -> float:
        nz = a > 0  # 0 · log 0 = 0; where a > 0 the midpoint is > 0 too
        return float(np.sum(a[nz] * np.log2(a[nz] / mid[nz])))

    return {
        "total_variation": float(0.5 * np.abs(pa - qa).sum()),
        "jensen_shannon": max(0.0, 0.5 * kl(pa) + 0.5 * kl(qa)),
    }


def _json_float(x: float) -> float | None:
    # strict JSON has no NaN: an undefined metric is written as null
    return None if math.isnan(x) else float(x)


def ci_record(triple: tuple[float, float, float]) -> dict[str, float | None]:
    """``(mean, low, high)`` as strict-JSON fields: ``mean``, ``ci_low``, ``ci_high`` (NaN -> null)."""
    mean, low, high = triple
    return {"mean": _json_float(mean), "ci_low": _json_float(low), "ci_high": _json_float(high)}


def evaluate_ranking(
    topk: np.ndarray,
    truth: Sequence[np.ndarray],
    *,
    n_items: int,
    item_category: np.ndarray | None = None,
    n_categories: int | None = None,
    segments: Mapping[str, np.ndarray] | None = None,
    ks_curve: Iterable[int] = range(1, 101),
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> dict[str, Any]:
    """Every headline metric in one JSON-ready dict (undefined values are ``None``).

    Users with empty truth are skipped everywhere (counted in ``n_users_skipped``); coverage and
    the category mix are taken over the evaluated users' rows. ``segments`` maps a name to a
    boolean mask over ``topk`` rows (e.g. ``warm_users``, ``cold_users``, ``cold_items_only``);
    when both ``cold_users`` and ``warm_users`` are given, ``cold_start_degradation`` is added.
    Recommended category mix uses the top-50 slots; the purchased mix uses distinct truth items.
    """
    top = _as_topk(topk)
    ks = np.array([_check_k(k) for k in ks_curve], dtype=np.int64)
    width = max(50, int(ks.max(initial=1)))
    h = _hits(top, truth, width)
    evaluated = h.n_truth > 0
    per_user = {"recall_50": _recall(h, 50), "ndcg_10": _ndcg(h, 10), "map_12": _map(h, 12)}
    boot = _Boot(n_boot=n_boot, alpha=alpha, seed=seed)

    result: dict[str, Any] = {
        "n_users": int(top.shape[0]),
        "n_users_evaluated": int(evaluated.sum()),
        "n_users_skipped": int((~evaluated).sum()),
    }
    for name, values in per_user.items():
        result[name] = ci_record(bootstrap_ci(values, **boot))
    result["coverage_50"] = ci_record(bootstrap_coverage_ci(top[evaluated], n_items, 50, **boot))
    curve = _curve(h, ks)
    result["recall_curve"] = {"k": ks.tolist(), "recall": [_json_float(v) for v in curve]}

    if segments:
        result["segments"] = {}
        for name, mask in segments.items():
            m = np.asarray(mask, dtype=bool)
            if m.shape != evaluated.shape:
                raise ValueError(f"segment {name!r} mask has shape {m.shape}, expected {evaluated.shape}")
            result["segments"][name] = {
                "n_users_evaluated": int((m & evaluated).sum()),
                "n_users_skipped": int((m & ~evaluated).sum()),
                "recall_50": ci_record(bootstrap_ci(per_user["recall_50"][m], **boot)),
                "ndcg_10": ci_record(bootstrap_ci(per_user["ndcg_10"][m], **boot)),
            }
        if "cold_users" in segments and "warm_users" in segments:
            cold, warm = np.asarray(segments["cold_users"], bool), np.asarray(segments["warm_users"], bool)
            result["cold_start_degradation"] = {
                name: ci_record(cold_start_degradation_ci(per_user[name][cold], per_user[name][warm], **boot))
                for name in ("recall_50", "ndcg_10")
            }

    if item_category is not None:
        cats = np.asarray(item_category)
        n_cat = int(cats.max(initial=-1)) + 1 if n_categories is None else n_categories
        recommended = category_distribution(top[evaluated, :50], cats, n_cat)
        purchased = category_distribution(h.truth_items, cats, n_cat)
        result["category_mix"] = {
            "recommended": [_json_float(v) for v in recommended],
            "purchased": [_json_float(v) for v in purchased],
            **{key: _json_float(v) for key, v in distribution_distance(recommended, purchased).items()},
        }
    result["bootstrap"] = dict(boot)
    return result
