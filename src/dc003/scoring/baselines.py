"""Recommendation baselines the two-tower model is compared against: popularity, trending,
repurchase and implicit-feedback ALS.

Every baseline takes the training log as three aligned arrays (``user``, ``item``, ``day``: dense
indices and days since 1970-01-01) and drops every interaction on or after ``cutoff_day`` itself,
so a caller cannot leak the test window into it by passing the whole log. Each returns an
``(len(users), min(k, n_items))`` int32 array of ranked items, row ``r`` for ``users[r]``.
``exclude`` (optional) is a ``len(users) x n_items`` sparse matrix, row ``r`` for ``users[r]``,
whose nonzero items are never recommended; a row short of items ends in ``-1``. All are
deterministic: every tie ends at the lower item index, and scores are summed in a fixed order
whatever the order of the log.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from dc003.scoring.ranking import PAD, as_exclusion, top_k_scores

# candidate matrices for the exclusion-aware fill are built this many rows at a time
_ROW_CHUNK = 4096


@dataclass(frozen=True)
class _Log:
    user: np.ndarray
    item: np.ndarray
    day: np.ndarray
    n_items: int
    cutoff_day: int
    users: np.ndarray
    k_out: int
    exclude: sp.csr_matrix | None


def _prepare(
    user: np.ndarray,
    item: np.ndarray,
    day: np.ndarray,
    n_items: int,
    cutoff_day: int,
    users: np.ndarray,
    k: int,
    exclude: sp.spmatrix | sp.sparray | None,
) -> _Log:
    u, i, d = (np.asarray(a).ravel() for a in (user, item, day))
    if not (u.size == i.size == d.size):
        raise ValueError(f"user, item and day must have one length (got {u.size}, {i.size}, {d.size})")
    for name, a in (("user", u), ("item", i), ("day", d)):
        if a.size and not np.issubdtype(a.dtype, np.integer):
            raise ValueError(f"{name} must be integers (got {a.dtype})")
    if n_items < 1:
        raise ValueError(f"n_items must be >= 1 (got {n_items})")
    if int(k) != k or k < 1:
        raise ValueError(f"k must be a positive integer (got {k})")
    test_users = np.asarray(users).ravel()
    if test_users.size and not np.issubdtype(test_users.dtype, np.integer):
        raise ValueError(f"users must be integers (got {test_users.dtype})")
    test_users = test_users.astype(np.int64)
    sorted_users = np.sort(test_users)
    if test_users.size and (sorted_users[0] < 0 or (sorted_users[1:] == sorted_users[:-1]).any()):
        raise ValueError("users must be distinct non-negative indices")
    if u.size and (u.min() < 0 or i.min() < 0 or i.max() >= n_items):
        raise ValueError(f"user must be >= 0 and item in [0, {n_items})")
    # the point-in-time cut: nothing from cutoff_day onward reaches any baseline
    before = d < cutoff_day
    return _Log(
        user=u[before].astype(np.int64),
        item=i[before].astype(np.int64),
        day=d[before].astype(np.int64),
        n_items=int(n_items),
        cutoff_day=int(cutoff_day),
        users=test_users,
        k_out=min(int(k), int(n_items)),
        exclude=as_exclusion(exclude, (test_users.size, int(n_items))),
    )


def _popularity_order(log: _Log) -> np.ndarray:
    last_week = log.day >= log.cutoff_day - 7
    week = np.bincount(log.item[last_week], minlength=log.n_items)
    total = np.bincount(log.item, minlength=log.n_items)
    # lexsort's last key is the primary one
    return np.lexsort((np.arange(log.n_items), -total, -week))


def _fill(
    order: np.ndarray,
    log: _Log,
    out: np.ndarray | None = None,
    taken: sp.csr_matrix | None = None,
) -> np.ndarray:
    """Fill each row's free slots from the global ``order``, skipping excluded and taken items.

    ``out`` holds items already placed at the front of each row (``-1`` after them) and ``taken``
    the same items as a sparse row x item matrix; both absent means every slot is free.
    """
    n_rows, n_items, k_out = log.users.size, log.n_items, log.k_out
    if out is None:
        out = np.full((n_rows, k_out), PAD, dtype=np.int32)
    blocked = sp.csr_matrix((n_rows, n_items), dtype=np.int8)
    for extra in (log.exclude, taken):
        if extra is not None:
            blocked = blocked + (extra != 0).astype(np.int8)
    blocked = blocked.tocsr()
    blocked.sort_indices()
    n_placed = (out >= 0).sum(axis=1)
    for start in range(0, n_rows, _ROW_CHUNK):
        stop = min(start + _ROW_CHUNK, n_rows)
        rows = blocked[start:stop]
        per_row = np.diff(rows.indptr)
        # the first k_out + (blocked in the row) candidates always hold k_out unblocked ones
        cand = order[: min(n_items, k_out + int(per_row.max(initial=0)))]
        row_ids = np.repeat(np.arange(stop - start, dtype=np.int64), per_row)
        blocked_codes = row_ids * n_items + rows.indices
        cand_codes = np.arange(stop - start, dtype=np.int64)[:, None] * n_items + cand[None, :]
        free = ~np.isin(cand_codes, blocked_codes)
        slot = n_placed[start:stop, None] + np.cumsum(free, axis=1) - 1
        use = free & (slot < k_out)
        r, c = np.nonzero(use)
        out[start + r, slot[r, c]] = cand[c]
    return out


def popularity_last_week(
    user: np.ndarray,
    item: np.ndarray,
    day: np.ndarray,
    *,
    n_items: int,
    cutoff_day: int,
    users: np.ndarray,
    k: int,
    exclude: sp.spmatrix | sp.sparray | None = None,
) -> np.ndarray:
    """Items most purchased in the 7 days before ``cutoff_day``, the same list for every user.

    Ties go to more purchases over the whole training log, then to the lower item index.
    """
    log = _prepare(user, item, day, n_items, cutoff_day, users, k, exclude)
    return _fill(_popularity_order(log), log)


def trending(
    user: np.ndarray,
    item: np.ndarray,
    day: np.ndarray,
    *,
    n_items: int,
    cutoff_day: int,
    users: np.ndarray,
    k: int,
    exclude: sp.spmatrix | sp.sparray | None = None,
    weeks: int = 4,
    half_life_days: float = 7.0,
) -> np.ndarray:
    """Items by purchases of the last ``weeks`` weeks, each weighted ``2^(-age/half_life_days)``
    where age is ``cutoff_day - day`` (1 for the day before the cutoff).

    Ties go to more purchases over the whole training log, then to the lower item index.
    """
    if weeks < 1 or not half_life_days > 0:
        raise ValueError(f"weeks must be >= 1 and half_life_days > 0 (got {weeks}, {half_life_days})")
    log = _prepare(user, item, day, n_items, cutoff_day, users, k, exclude)
    span = 7 * int(weeks)
    age = log.cutoff_day - log.day
    recent = age <= span
    # integer counts per (item, age) first, then one fixed weighted sum: input order cannot
    # change a float sum and so cannot flip a near-tie
    counts = np.bincount(log.item[recent] * span + (age[recent] - 1), minlength=n_items * span)
    score = counts.reshape(n_items, span) @ np.exp2(-np.arange(1, span + 1) / half_life_days)
    total = np.bincount(log.item, minlength=n_items)
    return _fill(np.lexsort((np.arange(n_items), -total, -score)), log)


def repurchase(
    user: np.ndarray,
    item: np.ndarray,
    day: np.ndarray,
    *,
    n_items: int,
    cutoff_day: int,
    users: np.ndarray,
    k: int,
    exclude: sp.spmatrix | sp.sparray | None = None,
    half_life_days: float = 7.0,
) -> np.ndarray:
    """The user's own past items by recency-weighted count (each purchase ``2^(-age/half_life_days)``,
    ties to the lower index), then the :func:`popularity_last_week` list for the remaining slots.
    """
    if not half_life_days > 0:
        raise ValueError(f"half_life_days must be > 0 (got {half_life_days})")
    log = _prepare(user, item, day, n_items, cutoff_day, users, k, exclude)
    n_rows = log.users.size
    row_of = np.full(max(int(log.user.max(initial=-1)), int(log.users.max(initial=-1))) + 1, -1)
    row_of[log.users] = np.arange(n_rows)
    rows = row_of[log.user]
    mine = rows >= 0
    rows, items, age = rows[mine], log.item[mine], log.cutoff_day - log.day[mine]
    pair = rows * n_items + items
    if log.exclude is not None:
        ex = log.exclude.tocoo()
        keep = ~np.isin(pair, ex.row.astype(np.int64) * n_items + ex.col)
        pair, age = pair[keep], age[keep]
    # count per (user, item, age), then weight and sum in sorted order: independent of log order
    triple, counts = np.unique(pair * (int(age.max(initial=0)) + 1) + age, return_counts=True)
    t_pair, t_age = np.divmod(triple, int(age.max(initial=0)) + 1)
    pairs, first = np.unique(t_pair, return_index=True)
    weighted = counts * np.exp2(-t_age / half_life_days)
    score = np.add.reduceat(weighted, first) if first.size else np.empty(0)
    p_row, p_item = np.divmod(pairs, n_items)

    order = np.lexsort((p_item, -score, p_row))
    p_row, p_item = p_row[order], p_item[order]
    rank = np.arange(p_row.size) - np.searchsorted(p_row, p_row)  # position within the user's run
    top = rank < log.k_out
    out = np.full((n_rows, log.k_out), PAD, dtype=np.int32)
    out[p_row[top], rank[top]] = p_item[top]
    taken = sp.csr_matrix(
        (np.ones(int(top.sum()), dtype=np.int8), (p_row[top], p_item[top])), shape=(n_rows, n_items)
    )
    return _fill(_popularity_order(log), log, out=out, taken=taken)


def als(
    user: np.ndarray,
    item: np.ndarray,
    day: np.ndarray,
    *,
    n_items: int,
    cutoff_day: int,
    users: np.ndarray,
    k: int,
    exclude: sp.spmatrix | sp.sparray | None = None,
    factors: int = 64,
    iterations: int = 15,
    regularization: float = 0.05,
    alpha: float = 40.0,
    seed: int = 0,
    num_threads: int = 1,
) -> np.ndarray:
    """Implicit-feedback ALS (``implicit``, CPU) on the user x item purchase-count matrix.

    ``implicit`` takes confidence as ``alpha * count``. Items are ranked by the inner product of
    the learned factors through :func:`dc003.scoring.ranking.top_k_scores`, so exclusion and
    tie-breaks are this package's, not ``implicit``'s. Users without training history get the
    :func:`popularity_last_week` list. ``num_threads=1`` keeps the fit reproducible bit for bit.
    """
    log = _prepare(user, item, day, n_items, cutoff_day, users, k, exclude)
    n_users = max(int(log.user.max(initial=-1)), int(log.users.max(initial=-1))) + 1
    counts = purchase_counts(log.user, log.item, (n_users, n_items))
    has_history = np.diff(counts.indptr)[log.users] > 0
    out = _fill(_popularity_order(log), log)
    if not has_history.any():
        return out

    user_factors, item_factors = fit_als(
        counts,
        factors=factors,
        iterations=iterations,
        regularization=regularization,
        alpha=alpha,
        seed=seed,
        num_threads=num_threads,
    )
    warm = np.flatnonzero(has_history)
    exclude_warm = None if log.exclude is None else log.exclude[warm]
    out[warm] = top_k_scores(user_factors[log.users[warm]], item_factors, log.k_out, exclude=exclude_warm)
    return out


def purchase_counts(user: np.ndarray, item: np.ndarray, shape: tuple[int, int]) -> sp.csr_matrix:
    """The user x item purchase-count matrix (float32): a repeated (user, item) pair sums to its count."""
    counts = sp.csr_matrix((np.ones(user.size, dtype=np.float32), (user, item)), shape=shape)
    counts.sum_duplicates()
    return counts


def fit_als(
    counts: sp.csr_matrix,
    *,
    factors: int,
    iterations: int,
    regularization: float,
    alpha: float,
    seed: int,
    num_threads: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """``(user_factors, item_factors)`` of implicit-feedback ALS on a user x item purchase-count matrix
    (``implicit``, CPU; confidence ``alpha * count``; ``num_threads=1`` is reproducible bit for bit)."""
    # implicit's heavy native import stays here, out of anything a CLI imports
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    # implicit's own advice: BLAS threads fight its solver threads and slow the fit
    with threadpool_limits(1, "blas"):
        model = AlternatingLeastSquares(
            factors=factors,
            regularization=regularization,
            alpha=alpha,
            iterations=iterations,
            num_threads=num_threads,
            random_state=seed,
        )
        model.fit(counts, show_progress=False)
    return np.asarray(model.user_factors), np.asarray(model.item_factors)
