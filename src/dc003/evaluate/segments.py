"""Warm / cold segments of the test users and of the test purchases, and cold-start degradation.

Cold users have no purchase before the test cutoff; cold items were never bought before it. A cold
user is a row of the top-k matrix, so the user segments are row masks. A cold item is part of a
user's truth, so the item segments split each user's truth into its cold and its warm items and score
the same top-k rows against each part: "recall@50 of cold items" is the share of the test purchases
of cold items that reached the top 50 (users without such purchases are skipped).

Degradation of a segment is ``1 - cold recall@50 / warm recall@50`` (cold users against warm users,
cold-item purchases against warm-item purchases); the contract's ``cold_start_performance`` bar is read
on the worse of the two.

Repurchases are the test purchases of an item the same user bought before the cutoff; new purchases are
the rest. They split each user's truth the same way (users without such purchases are skipped), so a
reader sees whether a model's recall comes from finding new items or from re-listing the user's own.

Popularity tiers split the purchases of warm items by how often the item was bought before the cutoff:
ranked by that count, the most-bought items that make up the first third of the pre-cutoff purchases
are the head, the next third the torso, the rest the tail (items with equal counts share a tier, so
the thirds are approximate). A collaborative model (ALS) and a content-based item tower do not fail on
the same items: the tiers show which side of the catalogue a model's recall comes from.

History bands split the warm users by how many purchases they made before the cutoff (1-5, 6-15, 16 or
more; the user tower reads the last 50): whether a model's recall grows as it knows a customer better.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

K = 50


@dataclass(frozen=True)
class Segments:
    warm_users: np.ndarray  # (U,) bool over the evaluated users
    cold_users: np.ndarray  # (U,) bool
    cold_item: np.ndarray  # (I,) bool: never bought before the cutoff
    bought: sp.csr_matrix | None = None  # (U, I): what each evaluated user bought before the cutoff
    item_purchases: np.ndarray | None = None  # (I,) purchases of each item before the cutoff
    user_purchases: np.ndarray | None = None  # (U,) purchases of each evaluated user before the cutoff

    def history_bands(self) -> dict[str, np.ndarray]:
        """Row masks of the warm users by how many purchases they made before the cutoff (the user tower
        reads the last 50): ``history_1_5``, ``history_6_15``, ``history_16_plus``."""
        if self.user_purchases is None:
            return {}
        n = self.user_purchases
        return {f"history_{name}": (n >= lo) & (n <= hi) for name, (lo, hi) in HISTORY_BANDS.items()}

    @property
    def tier(self) -> np.ndarray | None:
        """``(I,)`` popularity tier of each item (index into TIERS; -1 = cold item)."""
        return None if self.item_purchases is None else popularity_tiers(self.item_purchases)


TIERS = ("head_items", "torso_items", "tail_items")
HISTORY_BANDS = {"1_5": (1, 5), "6_15": (6, 15), "16_plus": (16, np.iinfo(np.int64).max)}


def popularity_tiers(counts: np.ndarray) -> np.ndarray:
    """``(I,)`` tier of each item from its purchase count before the cutoff: 0 head, 1 torso, 2 tail
    (thirds of the purchases, most-bought first; equal counts share the higher tier), -1 never bought."""
    counts = np.asarray(counts, dtype=np.int64)
    tier = np.full(counts.size, -1, dtype=np.int8)
    sold = counts > 0
    if not sold.any():
        return tier
    ranked = np.sort(counts[sold])[::-1]
    before = np.cumsum(ranked) - ranked  # purchases of the items ranked above each one
    total = ranked.sum()
    tier[sold] = len(TIERS) - 1
    for t in range(len(TIERS) - 2, -1, -1):
        # the smallest count still inside the first (t + 1) thirds: every item at or above it is in tier <= t
        floor = ranked[before * len(TIERS) < (t + 1) * total].min()
        tier[sold & (counts >= floor)] = t
    return tier


def bought_before(
    user: np.ndarray, item: np.ndarray, day: np.ndarray, *, cutoff_day: int, users: np.ndarray, n_items: int
) -> sp.csr_matrix:
    """``len(users) x n_items``: 1 where the user bought the item before ``cutoff_day``."""
    user, item, users = np.asarray(user), np.asarray(item), np.asarray(users)
    row_of = np.full(max(int(user.max(initial=-1)), int(users.max(initial=-1))) + 1, -1, dtype=np.int64)
    row_of[users] = np.arange(users.size)
    keep = (np.asarray(day) < cutoff_day) & (row_of[user] >= 0)
    m = sp.csr_matrix(
        (np.ones(int(keep.sum()), dtype=np.int8), (row_of[user[keep]], item[keep])),
        shape=(users.size, n_items),
    )
    m.sum_duplicates()
    m.data[:] = 1
    return m


def segments_before(
    user: np.ndarray, item: np.ndarray, day: np.ndarray, *, cutoff_day: int, users: np.ndarray, n_items: int
) -> Segments:
    """Cold users, cold items and each user's earlier purchases as of ``cutoff_day`` (point in time)."""
    before = np.asarray(day) < cutoff_day
    seen_user = np.isin(np.asarray(users), np.asarray(user)[before])
    counts = np.bincount(np.asarray(item)[before], minlength=n_items)[:n_items]
    bought = bought_before(user, item, day, cutoff_day=cutoff_day, users=users, n_items=n_items)
    users = np.asarray(users)
    per_user = np.bincount(np.asarray(user)[before], minlength=int(users.max(initial=-1)) + 1)
    return Segments(
        warm_users=seen_user, cold_users=~seen_user, cold_item=counts == 0, bought=bought,
        item_purchases=counts, user_purchases=per_user[users] if users.size else np.zeros(0, np.int64),
    )  # fmt: skip


def split_truth(
    truth: Sequence[np.ndarray], cold_item: np.ndarray
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Each user's truth as (cold-item part, warm-item part)."""
    cold, warm = [], []
    for t in truth:
        arr = np.asarray(t)
        is_cold = cold_item[arr] if arr.size else np.zeros(0, dtype=bool)
        cold.append(arr[is_cold])
        warm.append(arr[~is_cold])
    return cold, warm


def split_tiers(truth: Sequence[np.ndarray], tier: np.ndarray) -> dict[str, list[np.ndarray]]:
    """Each user's truth split by the items' popularity tier (cold items belong to none)."""
    parts: dict[str, list[np.ndarray]] = {name: [] for name in TIERS}
    for t in truth:
        arr = np.asarray(t)
        of = tier[arr] if arr.size else np.zeros(0, dtype=np.int8)
        for k, name in enumerate(TIERS):
            parts[name].append(arr[of == k])
    return parts


def tier_summary(counts: np.ndarray) -> dict[str, dict[str, int]]:
    """Per tier: how many items, their pre-cutoff purchases and the fewest purchases of an item in it."""
    counts = np.asarray(counts, dtype=np.int64)
    tier = popularity_tiers(counts)
    out = {}
    for k, name in enumerate(TIERS):
        m = tier == k
        out[name] = {
            "items": int(m.sum()),
            "purchases_before_cutoff": int(counts[m].sum()),
            "min_purchases": int(counts[m].min()) if m.any() else 0,
        }
    return out


def split_repurchases(
    truth: Sequence[np.ndarray], bought: sp.csr_matrix
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Each user's truth as (repurchase part, new part): row ``u`` of ``bought`` is user ``u``'s past."""
    again, new = [], []
    for u, t in enumerate(truth):
        arr = np.asarray(t)
        seen = np.isin(arr, bought.indices[bought.indptr[u] : bought.indptr[u + 1]])
        again.append(arr[seen])
        new.append(arr[~seen])
    return again, new


def truth_parts(
    topk: np.ndarray, parts: Mapping[str, Sequence[np.ndarray]], *, n_boot: int, alpha: float, seed: int
) -> dict[str, Any]:
    """Recall@50 / NDCG@10 (with intervals) of the same top-k rows against each part of the truth."""
    from dc003.scoring.metrics import bootstrap_ci, ci_record, ndcg_at_k, recall_at_k

    def ci(values: np.ndarray) -> dict[str, float | None]:
        return ci_record(bootstrap_ci(values, n_boot=n_boot, alpha=alpha, seed=seed))

    return {
        name: {
            "n_users_evaluated": int(sum(1 for t in part if np.asarray(t).size)),
            "n_purchases": int(sum(np.asarray(t).size for t in part)),
            "recall_50": ci(recall_at_k(topk, part, K)),
            "ndcg_10": ci(ndcg_at_k(topk, part, 10)),
        }
        for name, part in parts.items()
    }


def item_segments(
    topk: np.ndarray,
    truth: Sequence[np.ndarray],
    cold_item: np.ndarray,
    *,
    n_boot: int,
    alpha: float,
    seed: int,
) -> dict[str, Any]:
    """Recall@50 / NDCG@10 on the cold-item and the warm-item purchases, and the cold-item degradation."""

    cold_truth, warm_truth = split_truth(truth, cold_item)
    out = truth_parts(
        topk, {"cold_items": cold_truth, "warm_items": warm_truth}, n_boot=n_boot, alpha=alpha, seed=seed
    )
    out["degradation"] = item_degradation(topk, cold_truth, warm_truth, n_boot=n_boot, alpha=alpha, seed=seed)
    return out


def item_degradation(
    topk: np.ndarray,
    cold_truth: Sequence[np.ndarray],
    warm_truth: Sequence[np.ndarray],
    *,
    n_boot: int,
    alpha: float,
    seed: int,
) -> dict[str, float | None]:
    """``1 - recall@50 of the cold-item purchases / of the warm-item ones`` with its bootstrap interval
    (``mean``, ``ci_low``, ``ci_high``; null without cold-item purchases)."""
    from dc003.scoring.metrics import ci_record, cold_start_degradation_ci, recall_at_k

    cold, warm = recall_at_k(topk, cold_truth, K), recall_at_k(topk, warm_truth, K)
    return ci_record(cold_start_degradation_ci(cold, warm, n_boot=n_boot, alpha=alpha, seed=seed))


def worst_degradation(users: float | None, items: float | None) -> float | None:
    """The gate's number: the worse (larger) of the two degradations; one alone if the other is undefined."""
    known = [v for v in (users, items) if v is not None and not math.isnan(v)]
    return max(known) if known else None
