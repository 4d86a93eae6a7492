"""User and item features AS OF a cutoff day: computed only from interactions strictly before it.

Definitions are the contract's (``features:`` in contracts/dc002.yaml); the point-in-time rules of the
validation recompute total_purchases, lifetime_days and window_purchases from the interactions and compare.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from dc003.contracts.dc002 import Dc002Contract

if TYPE_CHECKING:
    import polars as pl


def age_group_expr(contract: Dc002Contract, age: pl.Expr) -> pl.Expr:
    """The declared bucket name of ``age``; null for a missing age (the unknown bucket)."""
    import polars as pl

    expr: pl.Expr = pl.lit(None, dtype=pl.String)
    for name, bucket in reversed(list(contract.features.users.age_group.buckets.items())):
        expr = pl.when((age >= bucket.min) & (age <= bucket.max)).then(pl.lit(name)).otherwise(expr)
    return expr


def user_features(
    contract: Dc002Contract, customers: pl.DataFrame, interactions: pl.LazyFrame, cutoff: int
) -> pl.DataFrame:
    """One row per customer (``customers``: user_idx order, static columns) with features as of ``cutoff``."""
    import polars as pl

    before = interactions.filter(pl.col("day") < cutoff)
    stats = before.group_by("user_idx").agg(
        pl.col("quantity").sum().cast(pl.Int64).alias("__total"),
        pl.col("day").min().alias("__first"),
        pl.col("day").n_unique().alias("__days"),
    )
    channel = (
        before.group_by(["user_idx", "sales_channel_id"])
        .len()
        .group_by("user_idx")
        .agg(
            pl.col("sales_channel_id").sort_by("len", descending=True).first().alias("__best"),
            (pl.col("len") == pl.col("len").max()).sum().alias("__n_top"),
        )
    )
    agg = stats.join(channel, on="user_idx", how="left").collect()
    total = pl.col("__total").fill_null(0)
    return (
        customers.join(agg, on="user_idx", how="left", maintain_order="left")
        .with_columns(
            age_group_expr(contract, pl.col("age")).alias("age_group"),
            pl.when(pl.col("__n_top") == 1)
            .then(pl.col("__best").cast(pl.String))
            .otherwise(None)
            .alias("preferred_channel"),
            (pl.lit(cutoff) - pl.col("__first")).fill_null(0).cast(pl.Int32).alias("lifetime_days"),
            total.cast(pl.Int32).alias("total_purchases"),
            (total / pl.col("__days")).fill_null(0.0).cast(pl.Float32).alias("avg_basket_size"),
        )
        .drop("__total", "__first", "__days", "__best", "__n_top")
    )


def item_features(
    contract: Dc002Contract, n_items: int, interactions: pl.LazyFrame, cutoff: int, window_days: int
) -> pl.DataFrame:
    """One row per item (0..n_items-1) with price and popularity features as of ``cutoff``."""
    import polars as pl

    spec = contract.features.items
    before = interactions.filter(pl.col("day") < cutoff)
    price = before.group_by("item_idx").agg(
        ((pl.col("price").cast(pl.Float64) * pl.col("quantity")).sum() / pl.col("quantity").sum()).alias(
            "__price"
        )
    )
    window = (
        before.filter(pl.col("day") >= cutoff - window_days)
        .group_by("item_idx")
        .agg(pl.col("quantity").sum().cast(pl.Int32).alias("window_purchases"))
    )
    base = pl.DataFrame({"item_idx": np.arange(n_items, dtype=np.int32)}).lazy()
    df = (
        base.join(price, on="item_idx", how="left", maintain_order="left")
        .join(window, on="item_idx", how="left", maintain_order="left")
        .with_columns(pl.col("window_purchases").fill_null(0))
        .collect()
    )
    mean_price = df["__price"].to_numpy()
    warm = ~np.isnan(mean_price)
    norm = np.zeros(n_items, dtype=np.float64)
    category: list[str | None] = [None] * n_items
    if warm.any():
        low, high = float(mean_price[warm].min()), float(mean_price[warm].max())
        norm[warm] = (mean_price[warm] - low) / (high - low) if high > low else 0.0
        fill = float(np.median(norm[warm])) if spec.price_normalized.cold_imputation == "median" else 0.0
        norm[~warm] = fill
        names = [str(v) for v in contract.vocabulary(spec.price_category.vocabulary)]
        k = len(names)
        edges = np.quantile(mean_price[warm], [i / k for i in range(1, k)])
        bucket = np.clip(np.searchsorted(edges, mean_price[warm], side="right"), 0, k - 1)
        for pos, b in zip(np.flatnonzero(warm), bucket, strict=True):
            category[pos] = names[b]
    counts = df["window_purchases"].to_numpy().astype(np.float64)
    low_c, high_c = (counts.min(), counts.max()) if n_items else (0.0, 0.0)
    popularity = (counts - low_c) / (high_c - low_c) if high_c > low_c else np.zeros(n_items)
    return pl.DataFrame(
        {
            "item_idx": df["item_idx"],
            "price_normalized": np.clip(norm, 0.0, 1.0).astype(np.float32),
            "price_category": pl.Series(category, dtype=pl.String),
            "popularity_score": np.clip(popularity, 0.0, 1.0).astype(np.float32),
            "window_purchases": df["window_purchases"],
            "cold": ~warm,
        }
    )
