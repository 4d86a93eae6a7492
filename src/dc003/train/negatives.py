"""Negative sampling: sampling probabilities for the popularity correction, and phase 3's hard negatives.

Hard negatives are mined once, with the phase-2 model, per positive item: the catalogue items whose cosine
with the positive is at least ``threshold`` (at most ``n_candidates`` nearest), ordered items of another
category first (the contract's "different categories preferred"), then by similarity; per training example
the first ``max_hard`` of those that are not one of the user's own training positives are kept.
"""

from __future__ import annotations

import numpy as np

from dc003.train.data import SPLIT_CODES, TrainingData

_ROW_BLOCK = 2048  # catalogue rows scored at once when mining
_EXAMPLE_BLOCK = 1 << 20  # examples filtered at once


def log_sampling_probability(item_counts: np.ndarray) -> np.ndarray:
    """``log q`` per item, ``q`` = the item's share of the training examples (the in-batch sampling rate).

    Items never sampled get half a count (they never occur in a batch; the floor only keeps log finite).
    """
    counts = np.asarray(item_counts, dtype=np.float64)
    total = max(float(counts.sum()), 1.0)
    return np.log(np.maximum(counts, 0.5) / total).astype(np.float32)


def training_positive_codes(data: TrainingData) -> np.ndarray:
    """Sorted unique ``user * n_items + item`` codes of every interaction before the val cutoff."""
    before = data.split <= SPLIT_CODES["train"]
    return np.unique(data.user[before] * data.n_items + data.item[before])


def neighbour_candidates(
    item_emb: np.ndarray, category: np.ndarray, threshold: float, n_candidates: int
) -> np.ndarray:
    """``(I, C)`` candidate negatives per positive item (``-1`` = none), best first (see module doc)."""
    emb = np.asarray(item_emb, dtype=np.float32)
    n = emb.shape[0]
    c = min(n_candidates, max(n - 1, 0))
    out = np.full((n, n_candidates), -1, dtype=np.int64)
    if c == 0:
        return out
    for s in range(0, n, _ROW_BLOCK):
        e = min(s + _ROW_BLOCK, n)
        sims = emb[s:e] @ emb.T
        sims[np.arange(e - s), np.arange(s, e)] = -np.inf  # never the positive itself
        top = np.argpartition(-sims, c - 1, axis=1)[:, :c]
        top_sim = np.take_along_axis(sims, top, axis=1)
        same = category[top] == category[s:e, None]
        keep = top_sim >= threshold
        # order: kept first, then other category first, then higher similarity, then lower index
        key_rank = np.lexsort((top, -top_sim, same, ~keep), axis=1)
        top = np.take_along_axis(top, key_rank, axis=1)
        keep = np.take_along_axis(keep, key_rank, axis=1)
        out[s:e, :c] = np.where(keep, top, -1)
    return out


def select_hard_negatives(
    users: np.ndarray,
    positives: np.ndarray,
    candidates: np.ndarray,
    positive_codes: np.ndarray,
    n_items: int,
    max_hard: int,
) -> np.ndarray:
    """``(E, max_hard)``: per example the first ``max_hard`` candidates of its positive item that are not
    among the user's training positives (``positive_codes``: sorted ``user * n_items + item``).

    ``-1`` pads rows with fewer candidates left.
    """
    e_total = users.shape[0]
    out = np.full((e_total, max_hard), -1, dtype=np.int64)
    for s in range(0, e_total, _EXAMPLE_BLOCK):
        e = min(s + _EXAMPLE_BLOCK, e_total)
        cand = candidates[positives[s:e]]
        codes = users[s:e, None] * n_items + np.maximum(cand, 0)
        pos = np.searchsorted(positive_codes, codes).clip(0, max(positive_codes.size - 1, 0))
        owned = positive_codes[pos] == codes if positive_codes.size else np.zeros_like(codes, dtype=bool)
        ok = (cand >= 0) & ~owned
        rank = np.cumsum(ok, axis=1) - 1
        take = ok & (rank < max_hard)
        r, col = np.nonzero(take)
        out[s + r, rank[r, col]] = cand[r, col]
    return out
