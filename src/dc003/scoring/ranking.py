"""Full-catalogue top-k ranking with a deterministic tie-break and optional exclusion of bought items.

The score is the plain inner product of the given vectors. The two-tower embeddings are
L2-normalised upstream, so for them this is the cosine the model trains and serves with (the
temperature scales every score alike and cannot change an order, so it is left out here).

Order rule, everywhere: higher score first, then lower item index. Excluded items are never
returned; where a user has fewer than ``k`` rankable items left the row is padded with ``-1``
(``-inf`` scores count as "never recommend": that is how exclusion is applied).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

PAD = -1  # an empty slot in a top-k row: the user had fewer rankable items than k
# fast path: about _GROUPS_PER_K * k column groups per row, each at least _MIN_GROUP wide
_GROUPS_PER_K = 8
_MIN_GROUP = 4


def top_k_scores(
    user_emb: np.ndarray,
    item_emb: np.ndarray,
    k: int,
    *,
    exclude: sp.spmatrix | sp.sparray | None = None,
    block: int = 1024,
    bonus: sp.spmatrix | sp.sparray | None = None,
) -> np.ndarray:
    """Rank the whole catalogue for every user by inner product; return ``(U, min(k, I))`` int32.

    Users are scored ``block`` at a time so working memory stays near ``10 * block * I`` bytes
    (scores, one partitioned copy, two masks) whatever ``U`` is. ``exclude`` is a ``U x I``
    sparse matrix whose nonzero entries (already bought items) are never returned; rows short of
    rankable items end in ``-1``. ``bonus`` (``U x I`` sparse) is added to the scores of its entries
    (the serving score's repurchase bonus: :func:`dc003.scoring.serving_score.repurchase_bonus`).
    """
    users = np.asarray(user_emb, dtype=np.float32)
    items = np.asarray(item_emb, dtype=np.float32)
    if users.ndim != 2 or items.ndim != 2 or users.shape[1] != items.shape[1]:
        raise ValueError(f"embeddings must be (U, D) and (I, D); got {users.shape} and {items.shape}")
    if block < 1:
        raise ValueError(f"block must be >= 1 (got {block})")
    _check_k(k)
    # one cheap check on the inputs instead of a NaN scan over every U x I score block
    if not (np.isfinite(users).all() and np.isfinite(items).all()):
        raise ValueError("embeddings contain NaN or inf")
    n_users, n_items = users.shape[0], items.shape[0]
    excl = as_exclusion(exclude, (n_users, n_items))
    extra = None
    if bonus is not None:
        if not sp.issparse(bonus) or bonus.shape != (n_users, n_items):
            raise ValueError(f"bonus must be a sparse matrix of shape {(n_users, n_items)}")
        extra = sp.csr_matrix(bonus)
    out = np.empty((n_users, min(k, n_items)), dtype=np.int32)
    items_t = items.T  # a view: BLAS reads the transpose without a copy
    for start in range(0, n_users, block):
        stop = min(start + block, n_users)
        scores = users[start:stop] @ items_t
        if extra is not None:
            part = extra[start:stop].tocoo()
            np.add.at(scores, (part.row, part.col), part.data.astype(np.float32))
        out[start:stop] = _top_k_block(scores, k, None if excl is None else excl[start:stop])
    return out


def top_k_from_scores(
    scores: np.ndarray, k: int, exclude: sp.spmatrix | sp.sparray | None = None
) -> np.ndarray:
    """The same ranking for a precomputed ``(U, I)`` score matrix; returns ``(U, min(k, I))`` int32."""
    arr = np.asarray(scores)
    if arr.ndim != 2:
        raise ValueError(f"scores must be (U, I); got shape {arr.shape}")
    _check_k(k)
    if not np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float64)  # integer scores (counts) need a float -inf for exclusion
    if np.isnan(arr).any():
        raise ValueError("scores contain NaN")
    excl = as_exclusion(exclude, arr.shape)
    # _top_k_block writes -inf into excluded cells, so never hand it the caller's array
    work = arr.copy() if excl is not None else arr
    return _top_k_block(work, k, excl)


def _check_k(k: int) -> None:
    if int(k) != k or k < 1:
        raise ValueError(f"k must be a positive integer (got {k})")


def as_exclusion(exclude: sp.spmatrix | sp.sparray | None, shape: tuple[int, int]) -> sp.csr_matrix | None:
    """Check an exclusion matrix's shape and return it as a private CSR copy without stored zeros."""
    if exclude is None:
        return None
    if not sp.issparse(exclude):
        raise TypeError(f"exclude must be a scipy sparse matrix (got {type(exclude).__name__})")
    if exclude.shape != shape:
        raise ValueError(f"exclude must have shape {shape} (got {exclude.shape})")
    # copy=True: eliminate_zeros below must not alter the caller's matrix
    csr = sp.csr_matrix(exclude, copy=True)
    csr.eliminate_zeros()  # an explicitly stored 0 is "not bought"
    return csr


def _top_k_block(scores: np.ndarray, k: int, exclude: sp.csr_matrix | None) -> np.ndarray:
    """Top-k of one score block; may overwrite ``scores`` (excluded cells become -inf)."""
    n_rows, n_items = scores.shape
    kk = min(k, n_items)
    if n_rows == 0 or kk == 0:
        return np.empty((n_rows, kk), dtype=np.int32)
    if exclude is not None and exclude.nnz:
        rows = np.repeat(np.arange(n_rows), np.diff(exclude.indptr))
        scores[rows, exclude.indices] = -np.inf
    if n_items < _GROUPS_PER_K * _MIN_GROUP * kk:
        return _top_k_partition(scores, kk)
    top, rest = _top_k_grouped(scores, kk)
    if rest.size:
        top[rest] = _top_k_partition(scores[rest], kk)
    return top


def _top_k_grouped(scores: np.ndarray, kk: int) -> tuple[np.ndarray, np.ndarray]:
    """Fast path: only the column groups that can hold a top-k item are looked at.

    The kk-th largest group maximum is a floor that at least kk items reach, so every top-k item
    scores at least that much and lies in a group whose maximum does. Returns the ranked rows and
    the indices of rows left to the exact path (heavy ties make too many groups qualify).
    """
    n_rows, n_items = scores.shape
    size = n_items // (_GROUPS_PER_K * kk)
    starts = np.arange(0, n_items, size, dtype=np.int32)
    group_max = np.maximum.reduceat(scores, starts, axis=1)
    floor = np.partition(group_max, starts.size - kk, axis=1)[:, starts.size - kk]
    hot = group_max >= floor[:, None]
    fast = hot.sum(axis=1) <= 2 * kk
    row, group = np.nonzero(hot & fast[:, None])
    cols = starts[group][:, None] + np.arange(size, dtype=np.int32)  # the last group may run short
    in_range = cols < n_items
    row_c = np.broadcast_to(row[:, None], cols.shape)[in_range]
    col_c = cols[in_range]
    val_c = scores[row_c, col_c]
    keep = val_c >= floor[row_c]
    row_c, col_c, val_c = row_c[keep], col_c[keep], val_c[keep]
    # every candidate is ranked exactly: row, then higher score, then lower item index
    order = np.lexsort((col_c, -val_c, row_c))
    row_c, col_c, val_c = row_c[order], col_c[order], val_c[order]
    rank = np.arange(row_c.size) - np.searchsorted(row_c, row_c)
    take = rank < kk
    top = np.full((n_rows, kk), PAD, dtype=np.int32)
    top[row_c[take], rank[take]] = np.where(val_c[take] == -np.inf, PAD, col_c[take])
    return top, np.flatnonzero(~fast)


def _top_k_partition(scores: np.ndarray, kk: int) -> np.ndarray:
    """Exact path for any block: a partition for the cut, explicit handling of ties at the cut."""
    n_rows, n_items = scores.shape
    # The kk-th largest score per row. argpartition alone would cut through a run of tied scores
    # arbitrarily, so only the threshold is taken from it and the cut is made explicitly below.
    thresh = np.partition(scores, n_items - kk, axis=1)[:, n_items - kk]
    above = scores > thresh[:, None]
    selected = scores >= thresh[:, None]
    n_selected = selected.sum(axis=1)
    tied = np.flatnonzero(n_selected > kk)
    if tied.size:
        # ties at the cut: keep every item above it plus the lowest-indexed items equal to it
        need = kk - above[tied].sum(axis=1)
        equal = selected[tied] & ~above[tied]
        keep = np.cumsum(equal, axis=1, dtype=np.int32) <= need[:, None]
        selected[tied] = above[tied] | (equal & keep)
    # exactly kk per row now; nonzero walks rows in order and columns ascending within a row
    cols = np.nonzero(selected)[1].reshape(n_rows, kk)
    vals = np.take_along_axis(scores, cols, axis=1)
    # stable sort on descending score keeps ascending item index among equal scores
    order = np.argsort(-vals, axis=1, kind="stable")
    top = np.take_along_axis(cols, order, axis=1).astype(np.int32)
    top[np.take_along_axis(vals, order, axis=1) == -np.inf] = PAD
    return top
