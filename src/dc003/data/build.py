"""The DC-002 build: raw files -> cleaned, indexed, split, featurised dataset (layout in
:mod:`dc003.data.layout`).

Order of work: clean articles and customers (their kept rows define the dense indices), clean the
transactions block by block, mapping ids to indices on the fly (64-character customer ids never live as
a 31.8M-row string column), merge same-day repeats, split by time, point the history slices,
compute the per-split features, encode the categoricals, write everything under a temporary directory and
swap it in.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dc003.contracts.dc002 import Dc002Contract
from dc003.contracts.dc002_lint import require_clean
from dc003.contracts.dc003 import Dc003Contract
from dc003.data import layout
from dc003.data.clean import Cleaned, Reference, check_reject_share, clean_file
from dc003.data.dirs import atomic_dir
from dc003.data.features import item_features, user_features
from dc003.data.history import history_pointers
from dc003.data.ingest import ROW, open_inputs
from dc003.data.splits import SplitPlan, plan_splits
from dc003.data.vocab import Encoding, fit_encoding
from dc003.errors import Dc003Error
from dc003.io import sha256_file, write_json

if TYPE_CHECKING:
    import polars as pl

USER_STATIC = ("customer_id", "club_member_status", "fashion_news_frequency", "age")
ITEM_STATIC = (
    "article_id",
    "product_group_name",
    "colour_group_name",
    "garment_group_name",
    "department_name",
    "index_group_name",
    "section_name",
    "prod_name",
    "detail_desc",
)
INTERACTION_ORDER = ["user_idx", "day", "item_idx", "sales_channel_id"]


@dataclass(frozen=True)
class BuildSettings:
    max_history: int
    train_window_days: int
    popularity_window_days: int


def build_dataset(
    raw_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    contract: Dc002Contract,
    dc003: Dc003Contract,
    settings: BuildSettings,
    *,
    contract_sha256: str = "",
    params_profile: str | None = None,
) -> dict[str, Any]:
    """Build the dataset from ``raw_dir`` into ``out_dir``; returns the manifest. ``params_profile``: the
    params profile this dataset's stages apply (dc003.params.profiles), recorded in the manifest."""
    import polars as pl

    require_clean(contract, dc003)
    started = time.perf_counter()
    steps = _Steps()
    inputs = open_inputs(raw_dir, contract)

    articles = clean_file(contract, inputs["articles"])
    check_reject_share(contract, articles)
    customers = clean_file(contract, inputs["customers"])
    check_reject_share(contract, customers)
    items = (
        articles.kept.drop(ROW)
        .sort("article_id")
        .with_row_index("item_idx")
        .with_columns(pl.col("item_idx").cast(pl.Int32))
    )
    users = (
        customers.kept.drop(ROW)
        .sort("customer_id")
        .with_row_index("user_idx")
        .with_columns(pl.col("user_idx").cast(pl.Int32))
    )
    index_of = {
        "articles": ("article_id", items, "item_idx"),
        "customers": ("customer_id", users, "user_idx"),
    }
    refs = []
    for ref in contract.raw.transactions.references:
        key, table, idx = index_of[ref.table]
        refs.append(Reference(ref.column, table.select(key, idx), idx))
    transactions = clean_file(contract, inputs["transactions"], refs, batched=True)
    check_reject_share(contract, transactions)

    steps.mark("clean")
    inter, merged = _merge_repeats(transactions.kept)
    transactions.repairs[_repeat_rule(contract)] = merged
    del transactions.kept
    first_day, last_day = inter.select(
        pl.col("day").min().alias("first"), pl.col("day").max().alias("last")
    ).row(0)
    plan = plan_splits(int(first_day), int(last_day), contract.splits, settings.train_window_days)
    hist_start, hist_end = history_pointers(
        inter["user_idx"].to_numpy(), inter["day"].to_numpy(), settings.max_history
    )
    inter = inter.with_columns(
        plan.split_expr(pl.col("day")).alias("split"),
        pl.Series("hist_start", hist_start),
        pl.Series("hist_end", hist_end),
    )
    del hist_start, hist_end

    steps.mark("interactions")
    encodings = _fit_encodings(contract, dc003, items, users)
    with atomic_dir(out_dir) as tmp:
        files = _write_tables(tmp, contract, items, users, inter, plan, settings, encodings)
        steps.mark("features_and_tables")
        oracle_note = _write_oracle(Path(raw_dir), tmp, items, users)
        quarantine = pl.concat([c.quarantine for c in (articles, customers, transactions)])
        quarantine.write_parquet(tmp / contract.tables.quarantine.file)
        files.append(contract.tables.quarantine.file)
        if oracle_note is not None:
            files.append(contract.tables.oracle.file)
        write_json(tmp / layout.SPLITS_JSON, {**plan.to_json(), "max_history": settings.max_history})
        write_json(tmp / layout.VOCAB_JSON, _vocab_json(tmp, contract, encodings))
        manifest = _manifest(
            tmp,
            contract,
            contract_sha256,
            settings,
            plan,
            (articles, customers, transactions),
            files,
            oracle_note,
        )
        manifest["params_profile"] = params_profile
        write_json(tmp / layout.MANIFEST_JSON, manifest)
        steps.mark("manifest")
    # the timings go to the caller (the log), never into the directory: an output holding its own run
    # time changes hash on every run, and DVC would re-run every stage below identical data
    return {
        **manifest,
        "build_seconds": round(time.perf_counter() - started, 3),
        "build_seconds_by_step": steps.seconds,
    }


class _Steps:
    """Wall-clock seconds per build step, for the manifest and the benchmark."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._last = time.perf_counter()

    def mark(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[name] = round(now - self._last, 3)
        self._last = now


def _repeat_rule(contract: Dc002Contract) -> str:
    for rule in contract.mess_handling.rules:
        if "same_day_repeat" in rule.match:
            return rule.rule
    raise Dc003Error("contracts/dc002.yaml: mess_handling.rules: no same_day_repeat rule")


def _merge_repeats(tx: pl.DataFrame) -> tuple[pl.DataFrame, int]:
    """Same customer, article, day and channel: one interaction with quantity = rows, price = their mean."""
    import polars as pl

    rows = tx.height
    inter = (
        tx.lazy()
        .select(
            "user_idx",
            "item_idx",
            pl.col("t_dat").cast(pl.Int32).alias("day"),
            "price",
            "sales_channel_id",
        )
        .group_by(["user_idx", "item_idx", "day", "sales_channel_id"])
        .agg(pl.col("price").mean().cast(pl.Float32), pl.len().cast(pl.Int16).alias("quantity"))
        .sort(INTERACTION_ORDER)
        .select("user_idx", "item_idx", "day", "price", "sales_channel_id", "quantity")
        .collect()
    )
    if inter.height == 0:
        raise Dc003Error("transactions: no clean interactions left after cleaning")
    return inter, rows - inter.height


def _fit_encodings(
    contract: Dc002Contract,
    dc003: Dc003Contract,
    items: pl.DataFrame,
    users: pl.DataFrame,
) -> dict[str, Encoding]:
    """Fitted on time-independent columns (catalogue, customer snapshot) or declared vocabularies."""
    import polars as pl

    encodings: dict[str, Encoding] = {}
    for entry in contract.compatibility.categorical:
        if entry.table == "items":
            values = items[entry.column_name]
        elif entry.table == "users_split" and entry.column_name in users.columns:
            values = users[entry.column_name]
        else:  # derived per split; only declared_order is meaningful here (lint-enforced by vocab sizes)
            values = pl.Series(entry.column_name, [], dtype=pl.String)
        encodings[entry.name] = fit_encoding(contract, dc003, entry, values)
    return encodings


def _encode(df: pl.DataFrame, encodings: dict[str, Encoding], table: str) -> pl.DataFrame:
    import polars as pl

    exprs = [e.encode(pl.col(e.entry.column_name)) for e in encodings.values() if e.entry.table == table]
    return df.with_columns(exprs) if exprs else df


def _write_tables(
    tmp: Path,
    contract: Dc002Contract,
    items: pl.DataFrame,
    users: pl.DataFrame,
    inter: pl.DataFrame,
    plan: SplitPlan,
    settings: BuildSettings,
    encodings: dict[str, Encoding],
) -> list[str]:
    import polars as pl

    t = contract.tables
    files: list[str] = []
    first = inter.lazy().group_by("item_idx").agg(pl.col("day").min().alias("first_purchase_day"))
    items_out = (
        items.select("item_idx", *ITEM_STATIC)
        .lazy()
        .join(first, on="item_idx", how="left", maintain_order="left")
        .collect()
    )
    _encode(items_out, encodings, "items").write_parquet(tmp / t.items.file)
    files.append(t.items.file)

    lf = inter.lazy()
    user_static = users.select("user_idx", *USER_STATIC).with_columns(pl.col("age").cast(pl.Float32))
    for split, cutoff in plan.cutoffs.items():
        u = user_features(contract, user_static, lf, cutoff)
        _encode(u, encodings, "users_split").write_parquet(tmp / t.users_split.file_for(split))
        it = item_features(contract, items.height, lf, cutoff, settings.popularity_window_days)
        _encode(it, encodings, "items_split").write_parquet(tmp / t.items_split.file_for(split))
        files += [t.users_split.file_for(split), t.items_split.file_for(split)]

    inter.write_parquet(tmp / t.interactions.file)
    files.append(t.interactions.file)
    for key, spec in (("user_idx", t.cold_users), ("item_idx", t.cold_items)):
        cold_sets(inter, plan, key).write_parquet(tmp / spec.file)
        files.append(spec.file)
    return files


def cold_sets(inter: pl.DataFrame, plan: SplitPlan, key: str) -> pl.DataFrame:
    """(split, key) for keys with interactions in the split and none before its cutoff."""
    import polars as pl

    first = inter.lazy().group_by(key).agg(pl.col("day").min().alias("__first"))
    parts = []
    for split, cutoff in plan.cutoffs.items():
        in_split = inter.lazy().filter(pl.col("split") == split).select(key).unique()
        parts.append(
            in_split.join(first, on=key)
            .filter(pl.col("__first") >= cutoff)
            .select(pl.lit(split).alias("split"), pl.col(key).cast(pl.Int32))
            .sort(key)
        )
    return pl.concat(pl.collect_all(parts))


def _write_oracle(
    raw_dir: Path, tmp: Path, items: pl.DataFrame, users: pl.DataFrame
) -> dict[str, int] | None:
    """The synthetic generator's ranking mapped to indices; rows whose ids did not survive cleaning are
    counted (never silently dropped)."""
    import polars as pl

    path = raw_dir / layout.ORACLE_RAW
    if not path.is_file():
        return None
    raw = pl.read_parquet(path)
    mapped = raw.join(users.select("customer_id", "user_idx"), on="customer_id", how="left").join(
        items.select("article_id", "item_idx"), on="article_id", how="left"
    )
    ok = mapped.filter(pl.col("user_idx").is_not_null() & pl.col("item_idx").is_not_null())
    ok.select("user_idx", "item_idx", pl.col("rank").cast(pl.Int32), pl.col("score").cast(pl.Float32)).sort(
        ["user_idx", "rank"]
    ).write_parquet(tmp / "oracle.parquet")
    return {"rows": raw.height, "mapped": ok.height, "unmapped": raw.height - ok.height}


def _vocab_json(tmp: Path, contract: Dc002Contract, encodings: dict[str, Encoding]) -> dict[str, Any]:
    """The encodings plus, per file, the share of rows in the unknown bucket."""
    import polars as pl

    out: dict[str, Any] = {}
    for name, enc in encodings.items():
        spec = contract.tables.get(enc.entry.table)
        assert spec is not None
        files = [spec.file_for(s) for s in layout.SPLITS] if spec.per_split else [spec.file]
        shares = {}
        for f in files:
            col = pl.read_parquet(tmp / f, columns=[enc.entry.encoded])[enc.entry.encoded]
            shares[f] = round(int(col.eq(0).sum()) / max(col.len(), 1), 6)
        out[name] = {
            **enc.to_json(),
            "unknown_share": shares,
            "max_unknown_share": enc.entry.max_unknown_share,
        }
    return out


def _manifest(
    tmp: Path,
    contract: Dc002Contract,
    contract_sha256: str,
    settings: BuildSettings,
    plan: SplitPlan,
    cleaned: tuple[Cleaned, ...],
    files: list[str],
    oracle: dict[str, int] | None,
) -> dict[str, Any]:
    import polars as pl

    counts = {f: pl.scan_parquet(tmp / f).select(pl.len()).collect().item() for f in files}
    cardinalities: dict[str, int] = {}
    items = pl.read_parquet(tmp / contract.tables.items.file)
    for entry in contract.compatibility.categorical:
        spec = contract.tables.get(entry.table)
        assert spec is not None
        f = spec.file_for("test") if spec.per_split else spec.file
        df = (
            items
            if f == contract.tables.items.file
            else pl.read_parquet(tmp / f, columns=[entry.column_name])
        )
        cardinalities[entry.column] = int(df[entry.column_name].drop_nulls().n_unique())
    return {
        "contract": {
            "id": contract.contract.id,
            "version": contract.contract.version,
            "sha256": contract_sha256,
        },
        "params": {
            "max_history": settings.max_history,
            "train_window_days": settings.train_window_days,
            "popularity_window_days": settings.popularity_window_days,
        },
        "splits": plan.to_json(),
        "counts": counts,
        "cardinalities": cardinalities,
        "raw": {
            c.name: {
                "file": c.display,
                "rows_read": c.rows_read,
                "rows_kept": c.rows_read - c.quarantine.height,
                "rejected": c.quarantine.height,
                "reject_share": round(c.quarantine.height / c.rows_read, 6),
                "rejected_by_rule": c.rejected,
                "repaired_by_rule": c.repairs,
                "accepted_by_rule": c.accepted,
                "extra_columns": list(c.extra_columns),
            }
            for c in cleaned
        },
        "max_reject_share": contract.mess_handling.max_reject_share,
        "oracle": oracle,
        "hashes": {f: sha256_file(tmp / f) for f in sorted(files)},
    }
