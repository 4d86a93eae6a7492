"""Rules -> Great Expectations 1.x suites per frame, validated on the frame as pandas DataFrames (built
from the Arrow / numpy buffers, see :func:`to_pandas`) in an ephemeral context, with Data Docs (HTML)
written to a local folder.

Each expectation carries the rule id in ``meta`` so its result is attributed back to the rule; the
summary compares it with Pandera's verdict on the same rule.
"""

from __future__ import annotations

import re
import time
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dc003.data.validation.pandera_engine import MAX_EXAMPLES, EngineResult
from dc003.data.validation.rules import Rule

if TYPE_CHECKING:
    import pandas as pd
    import polars as pl

PANDAS_TYPES = {
    "string": "str",
    "bool": "bool",
    "int8": "int8",
    "int16": "int16",
    "int32": "int32",
    "int64": "int64",
    "float32": "float32",
    "float64": "float64",
    "date": "datetime64",
}


def expectation(rule: Rule) -> Any:
    """The GE expectation enforcing ``rule`` (same semantics as the Pandera check)."""
    import great_expectations.expectations as gxe

    p = rule.params
    common: dict[str, Any] = {
        "meta": {"rule_id": rule.id, "rule": rule.name, "source": rule.source},
        "description": f"{rule.name}: {rule.describe()} ({rule.source})",
        "severity": "warning" if rule.severity == "warning" else "critical",
    }
    col = str(rule.column)  # None only for compound_unique, which names its columns
    k = rule.kind
    if k == "dtype":
        return gxe.ExpectColumnValuesToBeOfType(column=col, type_=PANDAS_TYPES[p["type"]], **common)
    if k == "not_null":
        return gxe.ExpectColumnValuesToNotBeNull(column=col, **common)
    if k == "between":
        return gxe.ExpectColumnValuesToBeBetween(
            column=col,
            min_value=p.get("min"),
            max_value=p.get("max"),
            strict_min=bool(p.get("strict_min")),
            strict_max=bool(p.get("strict_max")),
            **common,
        )
    if k == "in_set":
        return gxe.ExpectColumnValuesToBeInSet(column=col, value_set=list(p["values"]), **common)
    if k == "pattern":
        return gxe.ExpectColumnValuesToMatchRegex(column=col, regex=p["pattern"], **common)
    if k == "unique":
        return gxe.ExpectColumnValuesToBeUnique(column=col, **common)
    if k == "compound_unique":
        return gxe.ExpectCompoundColumnsToBeUnique(column_list=list(p["columns"]), **common)
    if k == "increasing":
        return gxe.ExpectColumnValuesToBeIncreasing(column=col, strictly=bool(p.get("strictly")), **common)
    if k == "pair_less":
        return gxe.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A=p["other"],
            column_B=col,
            or_equal=False,
            ignore_row_if="either_value_is_missing",
            **common,
        )
    if k == "pair_equal":
        return gxe.ExpectColumnPairValuesToBeEqual(
            column_A=col, column_B=p["other"], ignore_row_if="either_value_is_missing", **common
        )
    if k == "mean_between":
        return gxe.ExpectColumnMeanToBeBetween(
            column=col, min_value=p.get("min"), max_value=p.get("max"), **common
        )
    if k == "median_between":
        return gxe.ExpectColumnMedianToBeBetween(
            column=col, min_value=p.get("min"), max_value=p.get("max"), **common
        )
    if k == "null_share_between":
        # GE states the complement: the share of non-null values
        lo, hi = p.get("min"), p.get("max")
        return gxe.ExpectColumnProportionOfNonNullValuesToBeBetween(
            column=col,
            min_value=None if hi is None else max(0.0, 1.0 - hi),
            max_value=None if lo is None else min(1.0, 1.0 - lo),
            **common,
        )
    if k == "unique_count_at_most":
        return gxe.ExpectColumnUniqueValueCountToBeBetween(
            column=col, min_value=0, max_value=p["max"], **common
        )
    raise ValueError(f"unknown rule kind {k}")


# Integers beyond 2**53 would not survive the float64 a nullable integer column becomes for GE's value
# checks; such a column keeps pandas' nullable integer type (slower, still exact).
_EXACT_FLOAT = 2**53


def to_pandas(df: pl.DataFrame, widen: Collection[str] = ()) -> pd.DataFrame:
    """The frame as pandas, column by column from Arrow / numpy buffers (no Python object per value):
    numpy dtypes where a column has no nulls, pandas nullable integers / booleans where it has, Arrow-backed
    ``str`` for text.

    Numeric columns in ``widen`` (those with a ``between`` rule) become int64 (float64 when they hold nulls)
    or float64: GE 1.24 vectorises ``between`` only for those two numpy dtypes and calls Python once per
    value for int8..int32, float32 and nullable integers (minutes at H&M scale). The values, and so every
    verdict, are unchanged; type rules run on a frame without widening."""
    import pandas as pd
    import polars as pl

    columns: dict[str, Any] = {}
    for s in df.iter_columns():
        dtype, nulls, wide = s.dtype, s.null_count(), s.name in widen
        if dtype.is_integer():
            if wide and not nulls:
                columns[s.name] = s.cast(pl.Int64).to_numpy()
            elif wide and _fits_float(s):
                columns[s.name] = s.cast(pl.Float64).to_numpy()  # nulls -> NaN
            elif nulls or wide:
                values = s.cast(pl.Int64 if wide else dtype).fill_null(0).to_numpy()
                columns[s.name] = pd.arrays.IntegerArray(values, s.is_null().to_numpy())
            else:
                columns[s.name] = s.to_numpy()
        elif dtype.is_float():
            columns[s.name] = s.cast(pl.Float64 if wide else dtype).to_numpy()
        elif dtype == pl.Boolean and nulls:
            values = s.fill_null(False).to_numpy()
            columns[s.name] = pd.arrays.BooleanArray(values, s.is_null().to_numpy())
        else:
            columns[s.name] = s.to_pandas()
    return pd.DataFrame(columns, index=pd.RangeIndex(df.height), copy=False)


def _fits_float(s: pl.Series) -> bool:
    lo, hi = s.min(), s.max()
    return lo is None or (abs(int(lo)) <= _EXACT_FLOAT and abs(int(hi)) <= _EXACT_FLOAT)  # type: ignore[arg-type]


class GxRun:
    """One ephemeral context for a validation run; frames are added one at a time (memory stays one
    frame wide) and the Data Docs are built at the end."""

    def __init__(self, docs_dir: Path | None) -> None:
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        self.gx = gx
        self.context = gx.get_context(mode="ephemeral")
        self.context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
        self.docs_dir = docs_dir
        if docs_dir is not None:
            self.context.add_data_docs_site(
                site_name="dc002",
                site_config={
                    "class_name": "SiteBuilder",
                    "store_backend": {
                        "class_name": "TupleFilesystemStoreBackend",
                        "base_directory": str(Path(docs_dir).resolve()),
                    },
                    "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
                },
            )
        self.source = self.context.data_sources.add_pandas("dc002")
        self._n = 0

    def validate(
        self, df: pl.DataFrame, frame: str, rules: list[Rule]
    ) -> tuple[dict[str, EngineResult], float]:
        """Every rule on every row. A first pass asks GE for pass/fail only (its per-expectation cost
        doubles with counts and examples); failed expectations run again for counts and example rows.

        Three batches per frame: the type rules on the stored dtypes; the value rules in GE's vectorised
        dtypes (see :func:`to_pandas`); and, on only the columns they name, the value rules about a column
        holding nulls: GE drops those rows by copying every column of its batch, once per such rule."""
        started = time.perf_counter()
        name = frame.replace(":", "__").replace(".", "_")
        out: dict[str, EngineResult] = {}
        types = [r for r in rules if r.kind == "dtype"]
        if types:
            out.update(self._batch(to_pandas(df), f"{name}.types", types))
        values = [r for r in rules if r.kind != "dtype"]
        if values:
            pdf = to_pandas(df, {str(r.column) for r in values if r.kind == "between"})
            nullable = {c for c in pdf.columns if df[c].null_count()}
            with_nulls = [r for r in values if nullable & set(_columns(r))]
            plain = [r for r in values if not nullable & set(_columns(r))]
            if plain:
                out.update(self._batch(pdf, f"{name}.values", plain))
            if with_nulls:
                cols = list(dict.fromkeys(c for r in with_nulls for c in _columns(r) if c in pdf.columns))
                out.update(self._batch(pdf[cols], f"{name}.values_with_nulls", with_nulls))
            del pdf
        return out, time.perf_counter() - started

    def _batch(self, pdf: pd.DataFrame, name: str, rules: list[Rule]) -> dict[str, EngineResult]:
        out = self._run(pdf, name, rules, "BOOLEAN_ONLY")
        failed = [r for r in rules if out[r.id].failed and out[r.id].error is None]
        if failed:
            out.update(self._run(pdf, f"{name}.failures", failed, "SUMMARY"))
        # the data source's engine caches every batch it loaded (the whole pandas frame): drop it, or
        # memory grows by one converted table per frame
        manager = self.source.get_execution_engine().batch_manager
        manager.reset_batch_cache()
        manager.batch_data_cache.clear()
        return out

    def _run(
        self, pdf: pd.DataFrame, name: str, rules: list[Rule], result_format: str
    ) -> dict[str, EngineResult]:
        gx = self.gx
        self._n += 1
        unique = f"{self._n:03d}.{name}"  # one context may validate the same frame name twice
        asset = self.source.add_dataframe_asset(unique)
        batch = asset.add_batch_definition_whole_dataframe("all_rows")
        suite = self.context.suites.add(
            gx.ExpectationSuite(name=f"dc002.{unique}", expectations=[expectation(r) for r in rules])
        )
        vd = self.context.validation_definitions.add(
            gx.ValidationDefinition(name=f"dc002.{unique}", data=batch, suite=suite)
        )
        # GE fingerprints every pandas batch under 1 GB by hashing all of its values (seconds per
        # million-row table) into a batch marker no expectation reads; skipped for this run only
        from great_expectations.execution_engine import pandas_execution_engine as engine

        threshold = engine.HASH_THRESHOLD
        engine.HASH_THRESHOLD = 0
        try:
            result = vd.run(
                batch_parameters={"dataframe": pdf},
                result_format={"result_format": result_format, "partial_unexpected_count": MAX_EXAMPLES},
                run_id=self._run_id(),
            )
        finally:
            engine.HASH_THRESHOLD = threshold
        out: dict[str, EngineResult] = {r.id: EngineResult(failed=True, error="no result") for r in rules}
        kinds = {r.id: r.kind for r in rules}
        for er in result.results:
            config = er.expectation_config
            rule_id = (config.meta or {}).get("rule_id") if config is not None else None
            if rule_id in out:
                out[rule_id] = _result(er)
                observed = out[rule_id].observed
                if kinds[rule_id] == "null_share_between" and isinstance(observed, int | float):
                    # GE observes the non-null share (see expectation()): report the null share the rule is about
                    out[rule_id].observed = round(1.0 - float(observed), 6)
        return out

    def _run_id(self) -> Any:
        """A fixed run identity: GE names each Data Docs page by its run time, so the wall clock would
        make the stage's output differ on every run of identical data (and DVC re-run what follows)."""
        import datetime as dt

        from great_expectations.core.run_identifier import RunIdentifier

        return RunIdentifier(run_name="dc002", run_time=dt.datetime(2000, 1, 1, tzinfo=dt.UTC))

    def build_docs(self) -> None:
        if self.docs_dir is not None:
            self.context.build_data_docs(site_names=["dc002"])
            _freeze_docs(Path(self.docs_dir))


_STAMP = re.compile(r"\d{8}T\d{6}\.\d{6}Z")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_CACHE_BUSTER = re.compile(r"(logo-long\.png)\?d=[^\"']*")


def _freeze_docs(root: Path) -> None:
    """Make the Data Docs a function of the data alone: GE stamps each page with the wall clock (the
    validation time, a cache-busting query on its logo) and random element ids. Times become the fixed run
    time, ids a per-page counter, so a re-run on identical data writes identical bytes."""
    fixed = "20000101T000000.000000Z"
    for page in sorted(root.rglob("*.html")):
        text = page.read_text(encoding="utf-8")
        text = _numbered_ids(text)
        text = _CACHE_BUSTER.sub(r"\1", _STAMP.sub(fixed, text))
        page.write_text(text, encoding="utf-8")


def _columns(rule: Rule) -> list[str]:
    cols = [c for c in (rule.column, rule.params.get("other")) if c]
    return [str(c) for c in [*cols, *rule.params.get("columns", [])]]


def _result(er: Any) -> EngineResult:
    info = er.exception_info or {}
    raised = info.get("raised_exception") if isinstance(info, dict) else False
    r = er.result or {}
    if raised:
        message = str(info.get("exception_message") or "exception").splitlines()[0]
        return EngineResult(failed=True, error=message)
    count = r.get("unexpected_count")
    idx = r.get("partial_unexpected_index_list") or []
    values = r.get("partial_unexpected_list") or []
    examples = [{"row": _plain(i), "value": _plain(v)} for i, v in zip(idx, values, strict=False)]
    return EngineResult(
        failed=not er.success,
        count=None if count is None else int(count),
        examples=examples,
        observed=_plain(r.get("observed_value")),
    )


def _plain(value: Any) -> Any:
    """numpy scalars and tuples -> JSON-friendly values."""
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 1) == 0:
        return value.item()
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def _numbered_ids(text: str) -> str:
    ids: dict[str, str] = {}
    return _UUID.sub(lambda m: ids.setdefault(m.group(0), f"00000000-0000-4000-8000-{len(ids):012d}"), text)
