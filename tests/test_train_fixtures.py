"""A tiny DC-002 dataset on disk (the layout of dc003.data.layout) and a tiny model, for the training tests.

Users prefer one product group and buy mostly its items, so a few steps of training are measurable.
No tests here: the helpers are imported by tests/test_train*.py and tests/test_model*.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tests.conftest import REPO

N_USERS, N_ITEMS, DIM = 24, 30, 384
CUTOFFS = {"train": 100, "val": 130, "test": 137}
GROUPS = ["Garment Upper body", "Shoes", "Accessories"]


def _hist(user: np.ndarray, day: np.ndarray, max_len: int = 50) -> tuple[np.ndarray, np.ndarray]:
    start = np.zeros(user.size, dtype=np.int64)
    end = np.zeros(user.size, dtype=np.int64)
    for r in range(user.size):
        first_same_user = r
        while first_same_user > 0 and user[first_same_user - 1] == user[r]:
            first_same_user -= 1
        e = r
        while e > first_same_user and day[e - 1] == day[r]:
            e -= 1
        end[r] = e
        start[r] = max(first_same_user, e - max_len)
    return start, end


def write_dataset(root: Path, seed: int = 0) -> Path:
    """Write the tiny dataset under ``root/dataset`` and text vectors under ``root/text``; return root."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    ds = root / "dataset"
    ds.mkdir(parents=True, exist_ok=True)
    group = np.arange(N_ITEMS) % 3
    items = {
        "item_idx": np.arange(N_ITEMS, dtype=np.int32),
        "article_id": [f"{i:010d}" for i in range(N_ITEMS)],
        "prod_name": [f"item {i} of {GROUPS[group[i]]}" for i in range(N_ITEMS)],
        "detail_desc": [
            "" if i % 7 == 0 else f"a {GROUPS[group[i]].lower()} article" for i in range(N_ITEMS)
        ],
    }
    for name in ("product_group_name", "colour_group_name", "garment_group_name", "department_name",
                 "index_group_name", "section_name"):  # fmt: skip
        items[name] = [GROUPS[g] for g in group]
        items[f"{name}_idx"] = (group + 1).astype(np.int16)
    pq.write_table(pa.table(items), ds / "items.parquet")

    likes = np.arange(N_USERS) % 3
    rows = []
    for u in range(N_USERS):
        days = np.sort(rng.choice(np.arange(60, 144), size=rng.integers(6, 14), replace=False))
        for d in days:
            for _ in range(rng.integers(1, 4)):  # a basket of 1-3 items
                pool = np.flatnonzero(group == likes[u]) if rng.random() < 0.85 else np.arange(N_ITEMS)
                rows.append((u, int(rng.choice(pool)), int(d)))
    arr = np.array(sorted(set(rows), key=lambda r: (r[0], r[2], r[1])), dtype=np.int64)
    user, item, day = arr[:, 0], arr[:, 1], arr[:, 2]
    split = np.where(
        day < CUTOFFS["train"],
        "history",
        np.where(day < CUTOFFS["val"], "train", np.where(day < CUTOFFS["test"], "val", "test")),
    )
    start, end = _hist(user, day)
    pq.write_table(
        pa.table(
            {
                "user_idx": user.astype(np.int32),
                "item_idx": item.astype(np.int32),
                "day": day.astype(np.int32),
                "price": np.full(user.size, 0.02, dtype=np.float32),
                "sales_channel_id": np.full(user.size, 2, dtype=np.int8),
                "quantity": np.ones(user.size, dtype=np.int16),
                "split": split,
                "hist_start": start,
                "hist_end": end,
            }
        ),
        ds / "interactions.parquet",
    )
    for s, cut in CUTOFFS.items():
        before = day < cut
        counts = np.bincount(user[before], minlength=N_USERS)
        age = rng.uniform(18, 70, N_USERS).astype(np.float32)
        age[::5] = np.nan
        users = {
            "user_idx": np.arange(N_USERS, dtype=np.int32),
            "customer_id": [f"{u:064x}" for u in range(N_USERS)],
            "age": age,
            "lifetime_days": (counts > 0) * rng.integers(1, 400, N_USERS),
            "total_purchases": counts.astype(np.int32),
            "avg_basket_size": np.where(counts > 0, 2.0, 0.0).astype(np.float32),
        }
        for name in ("club_member_status", "fashion_news_frequency", "age_group", "preferred_channel"):
            users[f"{name}_idx"] = rng.integers(0, 3, N_USERS).astype(np.int16)
        pq.write_table(pa.table(users), ds / f"users_{s}.parquet")
        sold = np.bincount(item[before], minlength=N_ITEMS)
        pq.write_table(
            pa.table(
                {
                    "item_idx": np.arange(N_ITEMS, dtype=np.int32),
                    "price_normalized": rng.uniform(0, 1, N_ITEMS).astype(np.float32),
                    "price_category_idx": rng.integers(0, 10, N_ITEMS).astype(np.int16),
                    "popularity_score": (sold / max(sold.max(), 1)).astype(np.float32),
                    "window_purchases": sold.astype(np.int32),
                    "cold": sold == 0,
                }
            ),
            ds / f"items_{s}.parquet",
        )
    splits = {"splits": {s: {"cutoff_day": c} for s, c in CUTOFFS.items()}}
    (ds / "splits.json").write_text(json.dumps(splits), encoding="utf-8")
    (ds / "manifest.json").write_text(
        json.dumps({"params": {"popularity_window_days": 28}}), encoding="utf-8"
    )
    vocab = {
        "product_group_name": {"values": [None, *GROUPS]},
        "price_category": {"values": [None, *[f"p{i}" for i in range(1, 10)]]},
    }
    (ds / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    text = root / "text"
    text.mkdir(exist_ok=True)
    vectors = rng.normal(size=(N_ITEMS, 2, DIM)).astype(np.float32)
    vectors[:, :, :3] += 3 * np.eye(3, dtype=np.float32)[group][:, None, :]  # text carries the group
    np.save(text / "item_text.npy", vectors)
    return root


def model_params(**overrides: object):  # type: ignore[no-untyped-def]
    from dc003.params.train import ModelParams

    values = {
        "embedding_dim": 128,
        "max_history": 50,
        "feedforward_dim": 256,
        "history_item_features": ["product_group_name", "section_name"],
        "history_item_id": False,
        "history_residual": False,
        "category_feature": "product_group_name",
        **overrides,
    }
    return ModelParams(**values)


def contracts():  # type: ignore[no-untyped-def]
    from dc003.contracts import load_dc002, load_dc003

    return load_dc003(REPO / "contracts/dc003.yaml"), load_dc002(REPO / "contracts/dc002.yaml")


def tiny_config(n_items: int = N_ITEMS, **model_overrides: object):  # type: ignore[no-untyped-def]
    from dc003.model.config import NumericStats, resolve_model_config

    dc003, dc002 = contracts()
    stats = {
        n.name: NumericStats(min=0.0, max=10.0, mean=2.0, std=3.0, log_min=0.0, log_max=2.4)
        for n in dc002.compatibility.numerical
    }
    return resolve_model_config(dc003, dc002, model_params(**model_overrides), n_items=n_items, stats=stats)
