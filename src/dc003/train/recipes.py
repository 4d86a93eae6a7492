"""What each phase feeds the model: the batch (users, item rows, labels) and the objective.

- phase 1: each positive with ``negatives`` uniform random items (BPR pairs);
- phase 2: in-batch negatives plus ``random_negatives`` uniform items shared by the whole batch, every
  candidate carrying its log sampling probability for the popularity correction (and, with a teacher, the
  teacher's factors of each positive item for the distillation term);
- phase 3: in-batch negatives plus the example's mined hard negatives (:mod:`dc003.train.negatives`);
- phase 4: positives only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from dc003.model.two_tower import ItemFeatures, Objective, UserFeatures
from dc003.train.batches import ItemTable, basket_ids, epoch_order, history_window, user_features
from dc003.train.data import TrainingData

Batch = tuple[UserFeatures, ItemFeatures, dict[str, torch.Tensor]]
# ((categorical columns, values), (numerical columns, values)) of a customer without purchases
ColdProfile = tuple[tuple[list[int], list[float]], tuple[list[int], list[float]]]


@dataclass
class Recipe:
    data: TrainingData
    examples: dict[str, np.ndarray]  # split -> interaction rows that are examples
    items: dict[str, list[ItemTable]]  # split -> catalogue features per period (train: per week)
    max_len: int
    device: torch.device
    objective: Objective
    history_weight: float = 0.0  # + weight x the objective on the history encoder alone (TwoTowerModel)
    history_dropout: float = 0.0  # share of the train baskets shown as a cold customer's (cold_profile)

    baskets: dict[str, np.ndarray] = field(init=False)
    cold_profile: ColdProfile | None = field(init=False)

    def __post_init__(self) -> None:
        self.baskets = {s: basket_ids(self.data, rows) for s, rows in self.examples.items()}
        self.cold_profile = cold_profile(self.data) if self.history_dropout > 0 else None

    def _as_cold(self, users: UserFeatures, drop: torch.Tensor) -> UserFeatures:
        """``users`` with the rows ``drop`` given the profile columns a customer without purchases has."""
        assert self.cold_profile is not None
        (cat_cols, cat_vals), (num_cols, num_vals) = self.cold_profile
        cat, num = users.categorical.clone(), users.numerical.clone()
        rows = drop.nonzero().squeeze(1)
        for j, v in zip(cat_cols, cat_vals, strict=True):
            cat[rows, j] = int(v)
        for j, v in zip(num_cols, num_vals, strict=True):
            num[rows, j] = float(v)
        return UserFeatures(
            categorical=cat, numerical=num, history=users.history, history_padding=users.history_padding
        )

    def lengths(self, split: str) -> np.ndarray:
        rows = self.examples[split]
        return np.minimum(self.data.hist_end[rows] - self.data.hist_start[rows], self.max_len)

    def periods(self, split: str) -> np.ndarray:
        return self.data.period[self.examples[split]] if split == "train" else np.zeros(0, dtype=np.int64)

    def order(self, split: str, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
        groups = self.periods(split) if split == "train" and len(self.items["train"]) > 1 else None
        return epoch_order(self.baskets[split], self.lengths(split), batch_size, rng, groups)

    def table(self, split: str, rows: np.ndarray) -> ItemTable:
        """The item features of the batch's period: a batch spans one train week, except a week of a single
        basket merged into a neighbouring week's batches (:func:`dc003.train.batches.epoch_order`), which
        reads the earlier week's features (never features from after an example's own week)."""
        tables = self.items[split]
        if split != "train" or len(tables) == 1 or rows.size == 0:
            return tables[0]
        return tables[int(self.data.period[rows].min())]

    def batch(self, split: str, positions: np.ndarray, rng: np.random.Generator) -> Batch:
        """Towers' inputs for the examples at ``positions``: one user row per basket, one item row per
        distinct item (candidates and history items alike), with ``user_rows`` / ``item_rows`` expanding
        them back per example / candidate slot and ``history_rows`` pointing each history item at its row."""
        rows = self.examples[split][positions]
        _, first, user_rows = np.unique(
            self.baskets[split][positions], return_index=True, return_inverse=True
        )
        hist, pad = history_window(self.data, rows[first], self.max_len)
        drop = None
        if split == "train" and self.history_dropout > 0:
            drop = rng.random(first.size) < self.history_dropout
            pad = pad | drop[:, None]
            hist = np.where(pad, 0, hist)
        users = user_features(
            self.data, self.data.features[split], rows[first], self.max_len, self.device, (hist, pad)
        )
        if drop is not None and drop.any():
            users = self._as_cold(users, torch.from_numpy(drop).to(self.device))
        extra, labels = self.extra_items(split, positions, rows, rng)
        item_ids = np.concatenate([self.data.item[rows], extra])
        distinct, inverse = np.unique(np.concatenate([item_ids, hist[~pad]]), return_inverse=True)
        history_rows = np.zeros(hist.shape, dtype=np.int64)  # padded slots: row 0, masked in attention
        history_rows[~pad] = inverse[item_ids.size :]
        labels["users"] = torch.from_numpy(self.data.user[rows]).to(self.device)
        labels["items"] = torch.from_numpy(item_ids).to(self.device)
        labels["user_rows"] = torch.from_numpy(user_rows).to(self.device)
        labels["item_rows"] = torch.from_numpy(inverse[: item_ids.size]).to(self.device)
        labels["history_rows"] = torch.from_numpy(history_rows).to(self.device)
        return users, self.table(split, rows).take(distinct), labels

    def extra_items(
        self, split: str, positions: np.ndarray, rows: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, dict[str, torch.Tensor]]:
        return np.empty(0, dtype=np.int64), {}


def cold_profile(data: TrainingData) -> ColdProfile:
    """The user-feature columns that every customer without a purchase before the train cutoff shares
    (e.g. no lifetime, no purchases, no preferred channel), with that shared value: ``((categorical
    columns, values), (numerical columns, values))``. A basket shown without its history is shown with
    these, so it looks like the cold customer it stands for; the other columns (age, club status, ...) stay
    the customer's own. Found from the data, not from column names; no cold customer: nothing changes."""
    feats = data.features["train"]
    bought = np.bincount(data.user[data.day < data.cutoffs["train"]], minlength=data.n_users)
    cold = np.flatnonzero(bought[: data.n_users] == 0)

    def shared(table: np.ndarray) -> tuple[list[int], list[float]]:
        cols: list[int] = []
        vals: list[float] = []
        if cold.size < 2:
            return cols, vals
        sub = table[cold].astype(np.float64)
        first = sub[0]
        same = np.all((sub == first) | (np.isnan(sub) & np.isnan(first)), axis=0)  # a shared NaN stays NaN
        for j in np.flatnonzero(same):
            cols.append(int(j))
            vals.append(float(first[j]))
        return cols, vals

    return shared(feats.user_cat), shared(feats.user_num)


@dataclass
class BprRecipe(Recipe):
    negatives: int = 1

    def extra_items(
        self, split: str, positions: np.ndarray, rows: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, dict[str, torch.Tensor]]:
        b, k = rows.size, self.negatives
        neg = rng.integers(0, self.data.n_items, size=b * k)
        idx = b + np.arange(b * k).reshape(b, k)
        return neg, {"negatives": torch.from_numpy(idx).to(self.device)}


@dataclass
class InBatchRecipe(Recipe):
    """In-batch negatives (+ shared uniform negatives) with log sampling probabilities."""

    log_q: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.float32))
    shared_negatives: int = 0
    teacher: np.ndarray | None = None  # (I, k) L2-normalised teacher item factors, or none

    def extra_items(
        self, split: str, positions: np.ndarray, rows: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, dict[str, torch.Tensor]]:
        n = self.shared_negatives
        shared = rng.integers(0, self.data.n_items, size=n)
        pos = self.data.item[rows]
        # uniform draws: every item has probability 1/I of filling a shared slot
        log_q = np.concatenate([self.log_q[pos], np.full(n, -np.log(self.data.n_items), dtype=np.float32)])
        labels = {
            "n_shared": torch.tensor(rows.size + n),
            "log_q": torch.from_numpy(log_q.astype(np.float32)).to(self.device),
        }
        if self.teacher is not None:
            labels["teacher"] = torch.from_numpy(self.teacher[pos]).to(self.device)
        return shared, labels


@dataclass
class HardNegativeRecipe(InBatchRecipe):
    hard: dict[str, np.ndarray] = field(default_factory=dict)  # split -> (examples, K) item ids, -1 = none

    def extra_items(
        self, split: str, positions: np.ndarray, rows: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, dict[str, torch.Tensor]]:
        shared, labels = super().extra_items(split, positions, rows, rng)
        hard = self.hard[split][positions]
        b, n_shared = rows.size, rows.size + shared.size
        flat = hard[hard >= 0]
        idx = np.full(hard.shape, -1, dtype=np.int64)
        idx[hard >= 0] = n_shared + np.arange(flat.size)
        # hard negatives are chosen, not sampled in proportion to popularity: no correction (log q = 0)
        log_q = torch.cat([labels["log_q"], torch.zeros(flat.size, device=self.device)])
        extra = np.concatenate([shared, flat])
        category = self.data.item_category[np.concatenate([self.data.item[rows], extra])]
        labels.update(
            negatives=torch.from_numpy(idx).to(self.device),
            log_q=log_q,
            category=torch.from_numpy(category).to(self.device),
        )
        assert labels["n_shared"].item() == n_shared and b == hard.shape[0]
        return extra, labels
