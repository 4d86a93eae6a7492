"""The DC-002 dataset (layout: :mod:`dc003.data.layout`) as numpy arrays the trainer indexes directly.

Only the columns the resolved model config names are read (``CategoricalSpec.source`` etc.: the DC-002
compatibility mapping, stored in the checkpoint). Interactions stay one flat table; a history is the
slice ``[hist_start, hist_end)`` of it, gathered per batch, never materialised per example.

Item features of training examples are point-in-time by week. The dataset holds item features as of each
split's cutoff only, and the train window is 12 weeks long: as of the train cutoff, items released during
the window are "cold" with zero popularity although they sell (on the default synthetic data 19 % of the
train purchases, 30 % in its last week, against 1 % of val purchases). So for week ``k`` of the train window
the time-dependent item features (those of the ``items_split`` table) are recomputed as of
``train cutoff + 7k`` with DC-002's own definition (:func:`dc003.data.features.item_features`, the
popularity window from the dataset manifest); week 0 is the dataset's ``items_train`` itself.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from dc003.model.config import CategoricalSpec, ModelConfig, NumericSpec, NumericStats, fit_numeric_stats

if TYPE_CHECKING:
    from dc003.contracts.dc002 import Dc002Contract

SPLIT_CODES = {"history": 0, "train": 1, "val": 2, "test": 3}
_SPLIT_FILES = {"items_split": "items_{split}.parquet", "users_split": "users_{split}.parquet"}


@dataclass(frozen=True)
class SplitFeatures:
    """Features of every user and item as of one split's cutoff (rows = user_idx / item_idx)."""

    user_cat: np.ndarray  # (U, n_user_cat) int64
    user_num: np.ndarray  # (U, n_user_num) float32, NaN = missing
    item_cat: np.ndarray  # (I, n_item_cat) int64
    item_num: np.ndarray  # (I, n_item_num) float32


@dataclass(frozen=True)
class TrainingData:
    n_users: int
    n_items: int
    # train-window week of each interaction (0 outside the train split) and the item features as of the
    # start of each week: (item_cat, item_num) per week, week 0 = features["train"]
    period: np.ndarray
    train_weeks: list[tuple[np.ndarray, np.ndarray]]
    user: np.ndarray  # (E,) int64, interactions sorted by user then day
    item: np.ndarray  # (E,) int64
    day: np.ndarray  # (E,) int64
    split: np.ndarray  # (E,) int8, SPLIT_CODES
    hist_start: np.ndarray  # (E,) int64
    hist_end: np.ndarray  # (E,) int64
    cutoffs: dict[str, int]
    item_text: np.ndarray  # (I, n_text, dim) float32
    item_attributes: np.ndarray  # (I, n_attr) int64: the history tokens' item categoricals
    item_category: np.ndarray  # (I,) int64: the config's category_feature encoding
    category_names: list[str]  # index -> value (index 0: unknown)
    features: dict[str, SplitFeatures]

    def rows(self, split: str) -> np.ndarray:
        return np.flatnonzero(self.split == SPLIT_CODES[split])

    def never_sold(self, split: str) -> np.ndarray:
        """``(I,)`` bool: items with no interaction before ``split``'s cutoff (point in time)."""
        before = self.day < self.cutoffs[split]
        return np.bincount(self.item[before], minlength=self.n_items)[: self.n_items] == 0

    def item_arrays(self, split: str, period: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """``(item_cat, item_num)`` as of ``split``'s cutoff (train: as of the start of week ``period``)."""
        if split == "train":
            return self.train_weeks[period]
        f = self.features[split]
        return f.item_cat, f.item_num


def _file(dataset_dir: Path, table: str, split: str) -> Path:
    if table == "items":
        return dataset_dir / "items.parquet"
    if table in _SPLIT_FILES:
        return dataset_dir / _SPLIT_FILES[table].format(split=split)
    raise ValueError(f"unsupported dataset table {table!r}")


def _read_columns(
    dataset_dir: Path, sources: list[str], split: str, key: str, n: int, dtype: type
) -> np.ndarray:
    """Columns named ``<table>.<column>`` as an ``(n, len(sources))`` array with rows indexed by ``key``."""
    import pyarrow.parquet as pq

    out: np.ndarray = np.zeros((n, len(sources)), dtype=dtype)
    if dtype is np.float32:
        out[:] = np.nan
    by_file: dict[Path, list[tuple[int, str]]] = {}
    for j, src in enumerate(sources):
        table, _, column = src.partition(".")
        by_file.setdefault(_file(dataset_dir, table, split), []).append((j, column))
    for path, cols in by_file.items():
        tab = pq.read_table(path, columns=[key, *[c for _, c in cols]])
        idx = tab.column(key).to_numpy().astype(np.int64)
        for j, column in cols:
            values = tab.column(column).to_numpy(zero_copy_only=False)
            out[idx, j] = np.asarray(values, dtype=np.float64 if dtype is np.float32 else np.int64)
    return out


def _cat(dataset_dir: Path, specs: list[CategoricalSpec], split: str, key: str, n: int) -> np.ndarray:
    sources = []
    for s in specs:
        table, _, column = s.source.partition(".")
        sources.append(f"{table}.{column}_idx")
    return _read_columns(dataset_dir, sources, split, key, n, np.int64)


def _num(dataset_dir: Path, specs: list[NumericSpec], split: str, key: str, n: int) -> np.ndarray:
    return _read_columns(dataset_dir, [s.source for s in specs], split, key, n, np.float32)


def read_counts(dataset_dir: Path) -> tuple[int, int]:
    """``(n_users, n_items)`` from the dense user/item tables."""
    import pyarrow.parquet as pq

    n_items = pq.ParquetFile(dataset_dir / "items.parquet").metadata.num_rows
    n_users = pq.ParquetFile(dataset_dir / "users_train.parquet").metadata.num_rows
    return int(n_users), int(n_items)


def fit_stats(
    dataset_dir: Path, sources: dict[str, str], n_users: int, n_items: int
) -> dict[str, NumericStats]:
    """Normalisation statistics per numerical feature (name -> ``<table>.<column>``), on the train split."""
    out = {}
    for name, source in sources.items():
        table = source.partition(".")[0]
        key, n = ("user_idx", n_users) if table.startswith("users") else ("item_idx", n_items)
        values = _read_columns(dataset_dir, [source], "train", key, n, np.float32)[:, 0]
        out[name] = fit_numeric_stats(values)
    return out


def _weekly_items(
    dataset_dir: Path,
    config: ModelConfig,
    dc002: Dc002Contract,
    week0: SplitFeatures,
    train_cutoff: int,
    n_weeks: int,
    n_items: int,
) -> list[tuple[np.ndarray, np.ndarray]]:
    import polars as pl

    from dc003.data.features import item_features

    manifest = json.loads((dataset_dir / "manifest.json").read_text(encoding="utf-8"))
    window = int(manifest["params"]["popularity_window_days"])
    vocab = json.loads((dataset_dir / "vocab.json").read_text(encoding="utf-8"))
    it = config.item_tower
    lazy = pl.scan_parquet(dataset_dir / "interactions.parquet").select(
        "item_idx", "day", "price", "quantity"
    )
    weeks = [(week0.item_cat, week0.item_num)]
    for k in range(1, n_weeks):
        frame = item_features(dc002, n_items, lazy, train_cutoff + 7 * k, window)
        cat, num = week0.item_cat.copy(), week0.item_num.copy()
        for j, spec in enumerate(it.categorical):
            table, _, column = spec.source.partition(".")
            if table == "items_split":
                index = {v: i for i, v in enumerate(vocab[spec.name]["values"]) if v is not None}
                cat[:, j] = [index.get(v, 0) for v in frame[column].to_list()]
        for j, nspec in enumerate(it.numerical):
            table, _, column = nspec.source.partition(".")
            if table == "items_split":
                num[:, j] = frame[column].to_numpy().astype(np.float32)
        weeks.append((cat, num))
    return weeks


def load_training_data(
    dataset_dir: Path, item_text: np.ndarray, config: ModelConfig, dc002: Dc002Contract | None = None
) -> TrainingData:
    """The dataset as arrays. With ``dc002`` the train examples get weekly point-in-time item features
    (see the module doc); without it, every train example sees the features as of the train cutoff."""
    import pyarrow.parquet as pq

    n_users, n_items = read_counts(dataset_dir)
    if n_items != config.n_items:
        raise ValueError(f"{dataset_dir}: {n_items} items but the model was built for {config.n_items}")
    if item_text.shape[0] != n_items:
        raise ValueError(f"text vectors hold {item_text.shape[0]} items, the dataset {n_items}")
    inter = pq.read_table(
        dataset_dir / "interactions.parquet",
        columns=["user_idx", "item_idx", "day", "split", "hist_start", "hist_end"],
    )
    split_names = np.asarray(inter.column("split").to_numpy(zero_copy_only=False), dtype=object)
    split = np.full(split_names.shape[0], -1, dtype=np.int8)
    for name, code in SPLIT_CODES.items():
        split[split_names == name] = code
    splits = json.loads((dataset_dir / "splits.json").read_text(encoding="utf-8"))
    cutoffs = {name: int(s["cutoff_day"]) for name, s in splits["splits"].items()}

    ut, it = config.user_tower, config.item_tower
    features = {
        s: SplitFeatures(
            user_cat=_cat(dataset_dir, ut.categorical, s, "user_idx", n_users),
            user_num=_num(dataset_dir, ut.numerical, s, "user_idx", n_users),
            item_cat=_cat(dataset_dir, it.categorical, s, "item_idx", n_items),
            item_num=_num(dataset_dir, it.numerical, s, "item_idx", n_items),
        )
        for s in ("train", "val", "test")
    }
    day = inter.column("day").to_numpy().astype(np.int64)
    n_weeks = max(1, -(-(cutoffs["val"] - cutoffs["train"]) // 7))
    period = np.where(
        split == SPLIT_CODES["train"], np.clip((day - cutoffs["train"]) // 7, 0, n_weeks - 1), 0
    )
    train = features["train"]
    weeks = (
        _weekly_items(dataset_dir, config, dc002, train, cutoffs["train"], n_weeks, n_items)
        if dc002 is not None
        else [(train.item_cat, train.item_num)]
    )
    if dc002 is None:
        period = np.zeros_like(period)
    attrs = _cat(dataset_dir, ut.sequence.item_attributes, "train", "item_idx", n_items)
    category_spec = next(c for c in it.categorical if c.name == config.category_feature)
    category = _cat(dataset_dir, [category_spec], "train", "item_idx", n_items)[:, 0]
    names = _category_names(dataset_dir, category_spec)
    return TrainingData(
        n_users=n_users,
        n_items=n_items,
        period=period.astype(np.int64),
        train_weeks=weeks,
        user=inter.column("user_idx").to_numpy().astype(np.int64),
        item=inter.column("item_idx").to_numpy().astype(np.int64),
        day=day,
        split=split,
        hist_start=inter.column("hist_start").to_numpy().astype(np.int64),
        hist_end=inter.column("hist_end").to_numpy().astype(np.int64),
        cutoffs=cutoffs,
        item_text=np.ascontiguousarray(item_text, dtype=np.float32),
        item_attributes=attrs,
        item_category=category,
        category_names=names,
        features=features,
    )


def _category_names(dataset_dir: Path, spec: CategoricalSpec) -> list[str]:
    vocab_path = dataset_dir / "vocab.json"
    values: list[str | None] = []
    if vocab_path.is_file():
        vocab = json.loads(vocab_path.read_text(encoding="utf-8"))
        values = list(vocab.get(spec.name, {}).get("values", []))
    names = [str(v) if v is not None else "unknown" for v in values]
    names += [f"index_{i}" for i in range(len(names), spec.vocab_size)]
    return names[: spec.vocab_size]
