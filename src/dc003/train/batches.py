"""Batches as tensors, built with vectorised numpy gathers (no per-example Python work).

A training example is one interaction row: the user's features as of the split's cutoff, the user's
history (rows ``[hist_start, hist_end)``, most recent first, trimmed to the batch's longest real history)
and the purchased item. Epoch order is length-bucketed: examples are shuffled, cut into chunks of
``bucket_batches`` batches, sorted by history length inside a chunk and cut into batches whose order is
shuffled again, so most batches carry little padding while each still mixes many users.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from dc003.model.two_tower import ItemFeatures, UserFeatures
from dc003.train.data import SplitFeatures, TrainingData

BUCKET_BATCHES = 32


def history_window(data: TrainingData, rows: np.ndarray, max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """``(items, padding)`` of shape ``(len(rows), L)``: most recent first, L = longest history here."""
    start, end = data.hist_start[rows], data.hist_end[rows]
    length = np.minimum(end - start, max_len)
    width = int(length.max(initial=0))
    offsets = np.arange(width)
    padding = offsets[None, :] >= length[:, None]
    idx = np.where(padding, 0, end[:, None] - 1 - offsets[None, :])
    items = np.where(padding, 0, data.item[idx])
    return items, padding


def basket_ids(data: TrainingData, rows: np.ndarray) -> np.ndarray:
    """Per example (interaction rows sorted by user then day): the index of its basket (user, day).

    Every example of a basket has the same user features and the same history, so a batch runs the user
    tower once per basket, not once per example.
    """
    u, d = data.user[rows], data.day[rows]
    new = np.ones(rows.size, dtype=bool)
    new[1:] = (u[1:] != u[:-1]) | (d[1:] != d[:-1])
    return np.cumsum(new) - 1


def _expand(starts: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """The positions ``starts[i] .. starts[i] + sizes[i] - 1`` of every i, concatenated."""
    offsets = np.repeat(np.cumsum(sizes) - sizes, sizes)
    return np.repeat(starts, sizes) + np.arange(int(sizes.sum())) - offsets


def _even_cut(sizes: np.ndarray, target: int) -> np.ndarray:
    """Group index per item so consecutive items form ``round(total / target)`` (>= 1) groups of about
    equal total size: no tiny remainder group (batch norm needs more than one row per batch)."""
    total = int(sizes.sum())
    groups = max(1, round(total / target))
    before = np.cumsum(sizes) - sizes
    return (before * groups) // max(total, 1)


def epoch_order(
    baskets: np.ndarray,
    lengths: np.ndarray,
    batch_size: int,
    rng: np.random.Generator,
    groups: np.ndarray | None = None,
) -> list[np.ndarray]:
    """Example positions cut into length-bucketed batches of whole baskets, about ``batch_size`` examples
    each; a batch never mixes ``groups`` (the train week: one batch sees one week's item features).

    ``baskets`` (non-decreasing basket index per position) and ``lengths`` (history length per position)
    describe the examples; only the order of the baskets is random.
    """
    if groups is not None:
        batches = []
        for g in np.unique(groups):
            pos = np.flatnonzero(groups == g)
            batches += [pos[b] for b in _ordered(baskets[pos], lengths[pos], batch_size, rng)]
        order = rng.permutation(len(batches))
        return [batches[i] for i in order]
    batches = _ordered(baskets, lengths, batch_size, rng)
    order = rng.permutation(len(batches))
    return [batches[i] for i in order]


def _ordered(
    baskets: np.ndarray, lengths: np.ndarray, batch_size: int, rng: np.random.Generator
) -> list[np.ndarray]:
    n = baskets.size
    if n == 0:
        return []
    starts = np.flatnonzero(np.r_[True, baskets[1:] != baskets[:-1]])
    sizes = np.diff(np.r_[starts, n])
    perm = rng.permutation(starts.size)
    chunk_of = _even_cut(sizes[perm], batch_size * BUCKET_BATCHES)
    batches: list[np.ndarray] = []
    for c in range(int(chunk_of[-1]) + 1):
        part = perm[chunk_of == c]
        part = part[np.argsort(lengths[starts[part]], kind="stable")]
        cut = _even_cut(sizes[part], batch_size)
        for b in range(int(cut[-1]) + 1):
            chosen = part[cut == b]
            batches.append(_expand(starts[chosen], sizes[chosen]))
    return batches


@dataclass(frozen=True)
class ItemTable:
    """The whole catalogue's item-tower inputs for one split, as tensors (built once per phase)."""

    features: ItemFeatures

    @classmethod
    def build(cls, data: TrainingData, split: str, device: torch.device, period: int = 0) -> ItemTable:
        cat, num = data.item_arrays(split, period)
        return cls(
            ItemFeatures(
                categorical=torch.from_numpy(cat).to(device),
                numerical=torch.from_numpy(num).to(device),
                text=torch.from_numpy(data.item_text).to(device),
            )
        )

    @classmethod
    def periods(cls, data: TrainingData, split: str, device: torch.device) -> list[ItemTable]:
        """One table per train week (train), or the split's single table."""
        n = len(data.train_weeks) if split == "train" else 1
        return [cls.build(data, split, device, k) for k in range(n)]

    def take(self, items: np.ndarray | torch.Tensor) -> ItemFeatures:
        idx = torch.as_tensor(items, dtype=torch.long, device=self.features.categorical.device)
        return self.features.take(idx)


def user_features(
    data: TrainingData,
    feats: SplitFeatures,
    rows: np.ndarray,
    max_len: int,
    device: torch.device,
    window: tuple[np.ndarray, np.ndarray] | None = None,
) -> UserFeatures:
    """The user tower's inputs for interaction ``rows``; ``window``: their :func:`history_window`, when
    the caller has it already."""
    users = data.user[rows]
    hist, pad = history_window(data, rows, max_len) if window is None else window
    return UserFeatures(
        categorical=torch.from_numpy(feats.user_cat[users]).to(device),
        numerical=torch.from_numpy(feats.user_num[users]).to(device),
        history=torch.from_numpy(hist).to(device),
        history_padding=torch.from_numpy(pad).to(device),
    )
