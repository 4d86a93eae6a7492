"""Rules -> a Pandera (Polars backend) schema per frame; run it lazily and attribute every failure case
back to its rule. Element-wise checks ignore nulls (nullability is its own rule), like Great Expectations.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dc003.data.clean import polars_dtype
from dc003.data.validation.rules import Rule

if TYPE_CHECKING:
    import pandera.polars as pa
    import polars as pl

MAX_EXAMPLES = 5


@dataclass
class EngineResult:
    failed: bool
    count: int | None = None  # failing rows; None for a table-level (aggregate) rule
    examples: list[dict[str, Any]] = field(default_factory=list)  # {"row": index, "value": ...}
    observed: Any = None
    error: str | None = None


def _between(col: pl.Expr, p: dict[str, Any]) -> pl.Expr:
    import polars as pl

    cond = pl.lit(True)
    if p.get("min") is not None:
        cond = cond & ((col > p["min"]) if p.get("strict_min") else (col >= p["min"]))
    if p.get("max") is not None:
        cond = cond & ((col < p["max"]) if p.get("strict_max") else (col <= p["max"]))
    return cond


def _in_range(value: float | None, p: dict[str, Any]) -> bool:
    if value is None:
        return False
    return (p.get("min") is None or value >= p["min"]) and (p.get("max") is None or value <= p["max"])


def _column_check(rule: Rule) -> pa.Check:
    """A named Pandera check computing exactly what the matching GE expectation computes."""
    import pandera.polars as pa
    import polars as pl

    p = rule.params
    kind = rule.kind

    def rows(fn: Any) -> pa.Check:
        return pa.Check(lambda data: data.lazyframe.select(fn(pl.col(data.key))), name=rule.id)

    def scalar(fn: Any) -> pa.Check:
        def check(data: Any) -> bool:
            value = data.lazyframe.select(fn(pl.col(data.key))).collect().item()
            return _in_range(None if value is None else float(value), p)

        return pa.Check(check, name=rule.id)

    if kind == "between":
        return rows(lambda c: _between(c, p))
    if kind == "in_set":
        return rows(lambda c: c.is_in(p["values"]))
    if kind == "pattern":
        return rows(lambda c: c.str.contains(p["pattern"]))
    if kind == "increasing":
        return rows(lambda c: (c.diff() > 0) if p.get("strictly") else (c.diff() >= 0))
    if kind == "mean_between":
        return scalar(lambda c: c.cast(pl.Float64).mean())
    if kind == "median_between":
        return scalar(lambda c: c.cast(pl.Float64).median())
    if kind == "null_share_between":
        return scalar(lambda c: c.is_null().mean())
    if kind == "unique_count_at_most":
        return scalar(lambda c: c.drop_nulls().n_unique())
    raise ValueError(f"not a column check: {kind}")


def _frame_check(rule: Rule) -> pa.Check:
    import pandera.polars as pa
    import polars as pl

    other = str(rule.params["other"])
    col = str(rule.column)

    def check(data: Any) -> pl.LazyFrame:
        a, b = pl.col(col), pl.col(other)
        ok = (a < b) if rule.kind == "pair_less" else (a == b)
        return data.lazyframe.select(ok.alias(rule.id))

    return pa.Check(check, name=rule.id)


COLUMN_CHECKS = {
    "between",
    "in_set",
    "pattern",
    "increasing",
    "mean_between",
    "median_between",
    "null_share_between",
    "unique_count_at_most",
}


def build_schema(frame: str, rules: list[Rule]) -> pa.DataFrameSchema:
    import pandera.polars as pa

    by_col: dict[str, list[Rule]] = defaultdict(list)
    frame_checks = []
    unique_sets = []
    for r in rules:
        if r.kind in {"pair_less", "pair_equal"}:
            frame_checks.append(_frame_check(r))
        elif r.kind == "compound_unique":
            unique_sets.append(list(r.params["columns"]))
        elif r.column is not None:
            by_col[r.column].append(r)
    columns = {}
    for col, rs in by_col.items():
        kinds = {r.kind for r in rs}
        dtype = next((polars_dtype(r.params["type"]) for r in rs if r.kind == "dtype"), None)
        columns[col] = pa.Column(
            dtype,
            nullable="not_null" not in kinds,
            unique="unique" in kinds,
            required=True,
            checks=[_column_check(r) for r in rs if r.kind in COLUMN_CHECKS],
        )
    return pa.DataFrameSchema(
        columns,
        checks=frame_checks,
        unique=unique_sets[0] if unique_sets else None,
        name=frame,
        strict=False,
        coerce=False,
    )


AGGREGATES = {"mean_between", "median_between", "null_share_between", "unique_count_at_most"}


def run_pandera(df: pl.DataFrame, frame: str, rules: list[Rule]) -> tuple[dict[str, EngineResult], float]:
    """Validate ``df`` (every row) against the rules; one EngineResult per rule id.

    Table-level (aggregate) checks run in a second schema: Pandera cannot merge their boolean failure
    cases with the row-level ones in one error report."""
    started = time.perf_counter()
    results = {r.id: EngineResult(failed=False) for r in rules}
    rowwise = [r for r in rules if r.kind not in AGGREGATES]
    aggregate = [r for r in rules if r.kind in AGGREGATES]
    for group in (rowwise, aggregate):
        if group:
            _validate(df, frame, group, results)
    return results, time.perf_counter() - started


def _validate(df: pl.DataFrame, frame: str, rules: list[Rule], results: dict[str, EngineResult]) -> None:
    import pandera.errors as pe
    import polars as pl

    schema = build_schema(frame, rules)
    try:
        schema.validate(df, lazy=True)
        return
    except pe.SchemaErrors as exc:
        cases: pl.DataFrame = exc.failure_cases
    except pe.SchemaError as exc:  # a non-lazy error (e.g. the frame itself is unusable)
        for r in rules:
            results[r.id] = EngineResult(failed=True, error=str(exc).splitlines()[0])
        return
    lookup = _lookup(rules)
    for key, group in cases.group_by(["column", "check"], maintain_order=True):
        column, check = key
        if check == "column_in_dataframe":  # the missing column's name is the failure case
            for missing in group["failure_case"].to_list():
                for rule in _match(lookup, rules, str(missing), "dtype(missing)"):
                    results[rule.id] = EngineResult(failed=True, error=f"column {missing} is missing")
            continue
        for rule in _match(lookup, rules, column, str(check)):
            res = results[rule.id]
            res.failed = True
            rowwise = group.filter(pl.col("index").is_not_null())
            if rowwise.height:
                res.count = (res.count or 0) + rowwise.height
                res.examples = [
                    {"row": int(i), "value": v}
                    for i, v in rowwise.head(MAX_EXAMPLES).select("index", "failure_case").iter_rows()
                ]
            elif not group.is_empty():
                res.observed = group["failure_case"][0]


def _lookup(rules: list[Rule]) -> dict[str, Rule]:
    return {r.id: r for r in rules}


def _match(lookup: dict[str, Rule], rules: list[Rule], column: str | None, check: str) -> list[Rule]:
    """The rules a Pandera failure case belongs to."""
    if check in lookup:
        return [lookup[check]]
    builtin = {
        "not_nullable": "not_null",
        "field_uniqueness": "unique",
        "multiple_fields_uniqueness": "compound_unique",
    }
    if check.startswith("dtype("):
        kind = "dtype"
    elif check in builtin:
        kind = builtin[check]
    else:
        return []
    return [r for r in rules if r.kind == kind and (kind == "compound_unique" or r.column == column)]
