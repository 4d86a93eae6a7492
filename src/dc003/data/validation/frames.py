"""The frames the rules run on: each dataset file, plus the columns and views the contract's rules need
that are not stored (recomputed features, encodings from vocab.json, history look-ups, weekly volumes).

Derived values are recomputed here from the dataset's own interactions, splits.json and vocab.json, the
way a consumer would read them: a recomputation that disagrees with the stored column is a breach.
Views keep the row order of the file they come from, so a failing row index is a row of that file.

:meth:`DatasetFrames.inputs` names the stored columns each rule reads (through any view or recomputation),
and :meth:`DatasetFrames.type_breaches` the stored columns whose Parquet type is not the declared one (or
that are missing): a rule reading such a column cannot be computed, so the run reports the column's type
rule once and does not run the rules that follow from it.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dc003.contracts.dc002 import Dc002Contract
from dc003.data import layout
from dc003.data.clean import polars_dtype
from dc003.data.history import history_pointers
from dc003.data.splits import SplitPlan
from dc003.data.validation.rules import EXPECTED, ORDER, UNKNOWN, Rule
from dc003.errors import Dc003Error
from dc003.io import read_json

if TYPE_CHECKING:
    import polars as pl

INTERACTION_INPUTS = ("user_idx", "item_idx", "day", "quantity")  # what the recomputations read


class DatasetFrames:
    def __init__(self, dataset_dir: Path, contract: Dc002Contract) -> None:
        self.dir = Path(dataset_dir)
        self.contract = contract
        self._schemas: dict[str, dict[str, Any]] = {}

    # ------------------------------------------------------------ shared inputs

    @cached_property
    def splits_json(self) -> dict[str, Any]:
        return self._json(layout.SPLITS_JSON)

    @cached_property
    def vocab_json(self) -> dict[str, Any]:
        return self._json(layout.VOCAB_JSON)

    @cached_property
    def manifest(self) -> dict[str, Any]:
        return self._json(layout.MANIFEST_JSON)

    @cached_property
    def plan(self) -> SplitPlan:
        try:
            return SplitPlan.from_json(self.splits_json)
        except (KeyError, TypeError, ValueError) as exc:
            raise Dc003Error(f"{self.dir / layout.SPLITS_JSON}: malformed ({exc})") from exc

    @cached_property
    def interactions(self) -> pl.DataFrame:
        """The interaction columns recomputations need (read once). A missing one is a type breach: the
        rules that need it are not run (see :meth:`inputs`)."""
        import polars as pl

        path = self.dir / self.contract.tables.interactions.file
        have = self.schema(self.contract.tables.interactions.file)
        return pl.read_parquet(path, columns=[c for c in INTERACTION_INPUTS if c in have])

    def schema(self, file: str) -> dict[str, Any]:
        """The stored columns of a Parquet file and their polars types (from the footer; no data read)."""
        import polars as pl

        if file not in self._schemas:
            path = self.dir / file
            try:
                self._schemas[file] = dict(pl.scan_parquet(path).collect_schema())
            except (pl.exceptions.PolarsError, OSError) as exc:
                raise Dc003Error(f"{path}: cannot read as Parquet ({str(exc).splitlines()[0]})") from exc
        return self._schemas[file]

    def type_breaches(self, rules: list[Rule]) -> dict[tuple[str, str], str]:
        """(file, column) -> the type found ("missing" when absent), for every stored column whose type
        rule the file's Parquet schema breaks."""
        out: dict[tuple[str, str], str] = {}
        for r in rules:
            if r.kind != "dtype" or r.column is None or ":" in r.frame or not r.frame.endswith(".parquet"):
                continue
            found = self.schema(r.frame).get(r.column)
            if found is None:
                out[(r.frame, r.column)] = "missing"
            elif found != polars_dtype(r.params["type"]):
                out[(r.frame, r.column)] = str(found)
        return out

    def inputs(self, rule: Rule) -> set[tuple[str, str]]:
        """The stored (file, column) pairs ``rule`` reads, through its view or recomputation."""
        file, _, view = rule.frame.partition(":")
        if file == layout.SPLITS_JSON:
            return set()
        inter = self.contract.tables.interactions.file
        if view == "history":
            return {(file, c) for c in ("user_idx", "day", "hist_start", "hist_end")}
        if view == "weekly":
            return {(file, "day"), (file, "quantity")}
        if view.startswith("per_"):
            return {(file, view[4:]), (file, "quantity")}
        if view == "recompute":
            key = self._cold_key(file)
            return {(file, "split"), (file, key), (inter, key), (inter, "day")}
        cols = [c for c in (rule.column, rule.params.get("other")) if c]
        cols += list(rule.params.get("columns", []))
        return {pair for c in cols for pair in self._column_inputs(file, str(c))}

    def _column_inputs(self, file: str, col: str) -> set[tuple[str, str]]:
        """What :meth:`_derived` computes ``col`` from (``col`` itself when it is stored)."""
        inter = self.contract.tables.interactions.file
        if col.endswith(UNKNOWN):
            return {(file, col.removesuffix(UNKNOWN))}
        if col.endswith(EXPECTED):
            base = col.removesuffix(EXPECTED)
            entry = self._encodings().get(base)
            if entry is not None:
                return {(file, entry["column"].split(".", 1)[1])}
            if base in {"total_purchases", "lifetime_days"}:
                return {(file, "user_idx"), (inter, "user_idx"), (inter, "day"), (inter, "quantity")}
            if base == "window_purchases":
                return {(file, "item_idx"), (inter, "item_idx"), (inter, "day"), (inter, "quantity")}
            if base == "split":
                return {(file, "day")}
            return set()
        if col == ORDER:
            return {(file, "user_idx"), (file, "day")}
        if "__is_" in col:
            return {(file, col.partition("__is_")[0])}
        return {(file, col)}

    def _encodings(self) -> dict[str, dict[str, Any]]:
        """encoded column (e.g. ``club_member_status_idx``) -> its vocab.json entry."""
        return {
            v["encoded"].split(".", 1)[1]: v
            for v in self.vocab_json.values()
            if isinstance(v, dict) and isinstance(v.get("encoded"), str) and "." in v["encoded"]
        }

    def _cold_key(self, file: str) -> str:
        for _, table in self.contract.tables.all():
            if table.file == file:
                return next((k for k in table.key if k != "split"), "user_idx")
        return "user_idx"

    def _json(self, name: str) -> dict[str, Any]:
        path = self.dir / name
        if not path.is_file():
            raise Dc003Error(f"{path}: file not found")
        data = read_json(path)
        if not isinstance(data, dict):
            raise Dc003Error(f"{path}: must hold a JSON object")
        return data

    def rows(self, file: str) -> int:
        import polars as pl

        return int(pl.scan_parquet(self.dir / file).select(pl.len()).collect().item())

    # ------------------------------------------------------------ frames

    def build(self, frame: str, rules: list[Rule]) -> pl.DataFrame:
        """The frame ``frame`` with every column ``rules`` refer to that can be derived."""
        import polars as pl

        file, _, view = frame.partition(":")
        if file == layout.SPLITS_JSON:
            return self._split_lengths()
        path = self.dir / file
        if not path.is_file():
            raise Dc003Error(f"{path}: file not found")
        columns = self._view_columns(path, view)
        try:
            # a view reads only the columns it derives from (the interactions file is the largest table)
            df = pl.read_parquet(path, columns=columns)
        except (pl.exceptions.PolarsError, OSError) as exc:
            raise Dc003Error(f"{path}: cannot read as Parquet ({exc})") from exc
        if view == "history":
            return self._history(df)
        if view == "weekly":
            return self._weekly(df)
        if view.startswith("per_"):
            return df.group_by(view[4:]).agg(pl.col("quantity").cast(pl.Int64).sum()).sort(view[4:])
        if view == "recompute":
            return self._cold(file, df)
        wanted = {r.column for r in rules} | {str(r.params.get("other")) for r in rules}
        return df.with_columns(self._derived(file, df, wanted))

    def _view_columns(self, path: Path, view: str) -> list[str] | None:
        """The stored columns ``view`` needs (None: all of them). A missing one raises polars'
        ColumnNotFoundError, which fails the view's rules with the column's name."""
        import polars as pl

        if not view:
            return None
        try:
            have = set(pl.scan_parquet(path).collect_schema())
        except (pl.exceptions.PolarsError, OSError) as exc:
            raise Dc003Error(f"{path}: cannot read as Parquet ({exc})") from exc
        if view == "history":
            columns = ["user_idx", "day", "hist_start", "hist_end"]
        elif view == "weekly":
            columns = ["day", "quantity"]
        elif view.startswith("per_"):
            columns = [view[4:], "quantity"]
        elif view == "recompute":
            columns = ["split", "user_idx" if "user_idx" in have else "item_idx"]
        else:
            return None
        for column in columns:
            if column not in have:
                raise pl.exceptions.ColumnNotFoundError(f"{column} is not in {path.name}")
        return columns

    def _derived(self, file: str, df: pl.DataFrame, wanted: set[str | None]) -> list[pl.Expr]:
        import polars as pl

        exprs: list[pl.Expr] = []
        have = set(df.columns)
        encodings = self._encodings()
        split = self._split_of(file)
        for col in wanted:
            if col is None or col in have:
                continue
            if col.endswith(UNKNOWN) and col.removesuffix(UNKNOWN) in have:
                exprs.append((pl.col(col.removesuffix(UNKNOWN)) == 0).cast(pl.Int8).alias(col))
            elif col.endswith(EXPECTED):
                base = col.removesuffix(EXPECTED)
                if base in encodings:
                    expr = self._expected_encoding(encodings[base], have)
                else:
                    expr = self._expected_feature(base, split, df)
                if expr is not None:
                    exprs.append(expr.alias(col))
            elif col == ORDER and {"user_idx", "day"} <= have:
                exprs.append(
                    (pl.col("user_idx").cast(pl.Int64) * (1 << 31) + pl.col("day").cast(pl.Int64)).alias(col)
                )
            elif "__is_" in col:
                base, _, value = col.partition("__is_")
                if base in have:
                    target: Any = int(value) if value.lstrip("-").isdigit() else value
                    exprs.append((pl.col(base) == target).cast(pl.Int8).alias(col))
        return exprs

    def _split_of(self, file: str) -> str | None:
        for split in layout.SPLITS:
            if file.endswith(f"_{split}.parquet"):
                return split
        return None

    def _expected_encoding(self, entry: dict[str, Any], have: set[str]) -> pl.Expr | None:
        import polars as pl

        column = entry["column"].split(".", 1)[1]
        if column not in have:
            return None
        mapping = {v: i for i, v in enumerate(entry["values"]) if v is not None}
        return pl.col(column).replace_strict(mapping, default=0, return_dtype=pl.Int16).fill_null(0)

    def _expected_feature(self, column: str, split: str | None, df: pl.DataFrame) -> pl.Expr | None:
        """total_purchases / lifetime_days / window_purchases recomputed from interactions before cutoff."""
        import polars as pl

        if split is None:
            if column == "split":
                return self.plan.split_expr(pl.col("day"))
            return None
        cutoff = self.plan.cutoffs[split]
        inter = self.interactions.lazy().filter(pl.col("day") < cutoff)
        if column in {"total_purchases", "lifetime_days"} and "user_idx" in df.columns:
            key = "user_idx"
            agg = inter.group_by(key).agg(
                pl.col("quantity").cast(pl.Int64).sum().alias("total_purchases"),
                (pl.lit(cutoff) - pl.col("day").min()).cast(pl.Int64).alias("lifetime_days"),
            )
        elif column == "window_purchases" and "item_idx" in df.columns:
            key = "item_idx"
            window = int(self.manifest.get("params", {}).get("popularity_window_days", 0))
            agg = (
                inter.filter(pl.col("day") >= cutoff - window)
                .group_by(key)
                .agg(pl.col("quantity").cast(pl.Int64).sum().alias("window_purchases"))
            )
        else:
            return None
        values = (
            df.select(key)
            .lazy()
            .join(agg, on=key, how="left", maintain_order="left")
            .select(pl.col(column).fill_null(0))
            .collect()
            .to_series()
        )
        return pl.lit(values.cast(df.schema.get(column, pl.Int64)))

    def _history(self, df: pl.DataFrame) -> pl.DataFrame:
        """Per interaction row: what its history slice actually holds, and what it should hold."""
        import polars as pl

        n = df.height
        user = df["user_idx"].to_numpy()
        day = df["day"].to_numpy()
        start = df["hist_start"].to_numpy().astype(np.int64)
        end = df["hist_end"].to_numpy().astype(np.int64)
        length = end - start
        nonempty = length > 0
        first_ok = nonempty & (start >= 0) & (start < n)
        last_ok = nonempty & (end >= 1) & (end <= n)
        exp_start, exp_end = history_pointers(user, day, int(self.splits_json.get("max_history", 0)))

        def gather(values: np.ndarray, idx: np.ndarray, ok: np.ndarray) -> pl.Series:
            out = np.zeros(n, dtype=values.dtype)
            out[ok] = values[idx[ok]]
            return pl.Series(out).set(pl.Series(~ok), None)

        return pl.DataFrame(
            {
                "user_idx": df["user_idx"],
                "day": df["day"],
                "hist_start": df["hist_start"],
                "hist_end": df["hist_end"],
                "hist_len": pl.Series(length),
                "hist_first_user": gather(user, start, first_ok),
                "hist_last_user": gather(user, end - 1, last_ok),
                "hist_last_day": gather(day, end - 1, last_ok),
                "hist_start" + EXPECTED: pl.Series(exp_start),
                "hist_end" + EXPECTED: pl.Series(exp_end),
            }
        )

    def _weekly(self, df: pl.DataFrame) -> pl.DataFrame:
        """Volume (sum of quantity) of each full week counted back from the last day; log_ratio is
        ln((week + 1) / (previous week + 1)), +1 so an empty week reads as a collapse, not a NaN."""
        import polars as pl

        last, first = self.plan.last_day, self.plan.first_day
        n_weeks = (last - first + 1) // 7
        weeks = (
            df.lazy()
            .with_columns(((last - pl.col("day")) // 7).alias("weeks_back"))
            .filter(pl.col("weeks_back") < n_weeks)
            .group_by("weeks_back")
            .agg(pl.col("quantity").cast(pl.Int64).sum().alias("volume"))
            .collect()
        )
        full = pl.DataFrame({"weeks_back": np.arange(n_weeks - 1, -1, -1, dtype=np.int64)})
        vol = full.join(weeks.with_columns(pl.col("weeks_back").cast(pl.Int64)), on="weeks_back", how="left")
        vol = vol.with_columns(pl.col("volume").fill_null(0))
        v = vol["volume"].to_numpy().astype(np.float64)
        ratio = np.log((v[1:] + 1.0) / (v[:-1] + 1.0)) if len(v) > 1 else np.zeros(0)
        return pl.DataFrame(
            {
                "week_start_day": (last - 7 * vol["weeks_back"][1:] - 6).cast(pl.Int32),
                "volume": vol["volume"][1:],
                "log_ratio": ratio,
            }
        )

    def _cold(self, file: str, df: pl.DataFrame) -> pl.DataFrame:
        """Listed cold keys against the recomputed ones, full outer join: listed / expected 0 or 1."""
        import polars as pl

        key = "user_idx" if "user_idx" in df.columns else "item_idx"
        inter = self.interactions.lazy()
        first = inter.group_by(key).agg(pl.col("day").min().alias("__first"))
        parts = []
        for split, cutoff in self.plan.cutoffs.items():
            end = self.plan.ends[split]
            in_split = inter.filter((pl.col("day") >= cutoff) & (pl.col("day") <= end)).select(key).unique()
            parts.append(
                in_split.join(first, on=key)
                .filter(pl.col("__first") >= cutoff)
                .select(pl.lit(split).alias("split"), pl.col(key).cast(pl.Int64))
            )
        expected = pl.concat(pl.collect_all(parts)).with_columns(pl.lit(1, dtype=pl.Int8).alias("expected"))
        listed = df.select(pl.col("split").cast(pl.String), pl.col(key).cast(pl.Int64)).with_columns(
            pl.lit(1, dtype=pl.Int8).alias("listed")
        )
        return (
            listed.join(expected, on=["split", key], how="full", coalesce=True)
            .with_columns(pl.col("listed").fill_null(0), pl.col("expected").fill_null(0))
            .sort(["split", key])
        )

    def _split_lengths(self) -> pl.DataFrame:
        import polars as pl

        s = self.contract.splits
        declared = {
            "train": int(self.manifest.get("params", {}).get("train_window_days", s.train_window_days)),
            "val": s.val_days,
            "test": s.test_days,
        }
        rows = self.splits_json.get("splits", {})
        names = list(rows)
        return pl.DataFrame(
            {
                "split": names,
                "days": [int(rows[n].get("days", -1)) for n in names],
                "days" + EXPECTED: [declared.get(n, -1) for n in names],
            },
            schema={"split": pl.String, "days": pl.Int64, "days" + EXPECTED: pl.Int64},
        )
