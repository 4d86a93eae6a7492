"""Batches as tensors, built with vectorised numpy gathers (no per-example Python work).

A training example is one interaction row: the user's features as of the split's cutoff, the user's
history (rows ``[hist_start, hist_end)``, most recent first, trimmed to the batch's longest real history)
and the purchased item. Epoch order is length-bucketed: examples are shuffled, cut into chunks of
``bucket_batches`` batches, sorted by history length inside a chunk and cut into batches whose order is
shuffled again, so most batches carry little padding while each still mixes many users.

Every training batch holds at least two baskets (the towers' batch norm needs two rows): a basket larger
than a batch, or a train week with a single basket, is merged into a neighbouring batch / week rather than
left alone (or leaving an empty batch behind).
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
    each; a batch never mixes ``groups`` (the train week: one batch sees one week's item features), except
    that a group of a single basket joins a neighbouring group (:func:`_merge_single_basket_groups`).

    ``baskets`` (non-decreasing basket index per position) and ``lengths`` (history length per position)
    describe the examples; only the order of the baskets is random.
    """
    if groups is not None:
        groups = _merge_single_basket_groups(baskets, groups)
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
    chosen: list[np.ndarray] = []  # basket numbers of each batch
    # a basket larger than a batch (or a chunk) skips group numbers: only the numbers in use make batches
    for c in np.unique(chunk_of):
        part = perm[chunk_of == c]
        part = part[np.argsort(lengths[starts[part]], kind="stable")]
        cut = _even_cut(sizes[part], batch_size)
        chosen += [part[cut == b] for b in np.unique(cut)]
    return [_expand(starts[c], sizes[c]) for c in _no_single_baskets(chosen)]


def _no_single_baskets(batches: list[np.ndarray]) -> list[np.ndarray]:
    """A batch of one basket (one user row: batch norm fails in training) joins the next batch (the
    previous one when it is the last); with a single basket in all there is nothing to join."""
    out: list[np.ndarray] = []
    carry: np.ndarray | None = None
    for b in batches:
        if carry is not None:
            b = np.concatenate([carry, b])
            carry = None
        if b.size < 2:
            carry = b
        else:
            out.append(b)
    if carry is not None:
        if out:
            out[-1] = np.concatenate([out[-1], carry])
        else:
            out.append(carry)
    return out


def _merge_single_basket_groups(baskets: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Groups (train weeks) holding a single basket join the previous group that holds two or more (the
    first such group when none precedes); all of them form one group when none holds two. The batch then
    reads the earliest week's item features (:meth:`dc003.train.recipes.Recipe.table`): staler for the
    moved examples, never later than their own week."""
    labels = np.unique(groups)
    if labels.size < 2:
        return groups
    counts = np.array([np.unique(baskets[groups == g]).size for g in labels])
    kept = labels[counts >= 2]
    if kept.size == labels.size:
        return groups
    if kept.size == 0:
        return np.full_like(groups, labels[0])
    target = kept[np.clip(np.searchsorted(kept, labels, side="right") - 1, 0, None)]
    return target[np.searchsorted(labels, groups)]


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
