"""Rules -> a Great Expectations 1.x suite per frame, validated on the frame as a pandas DataFrame in an
ephemeral context, with Data Docs (HTML) written to a local folder.

Each expectation carries the rule id in ``meta`` so its result is attributed back to the rule; the
summary compares it with Pandera's verdict on the same rule.
"""

from __future__ import annotations

import time
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


def to_pandas(df: pl.DataFrame) -> pd.DataFrame:
    """Numpy dtypes where a column has no nulls; pandas nullable integers where it has; str for text."""
    import pandas as pd
    import polars as pl

    out = df.to_pandas()
    for name, dtype in df.schema.items():
        if dtype.is_integer() and df[name].null_count():
            out[name] = pd.array(df[name].to_list(), dtype=str(dtype))
        elif dtype == pl.Boolean and df[name].null_count():
            out[name] = pd.array(df[name].to_list(), dtype="boolean")
    return out


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
        doubles with counts and examples); failed expectations run again for counts and example rows."""
        started = time.perf_counter()
        pdf = to_pandas(df)
        name = frame.replace(":", "__").replace(".", "_")
        out = self._run(pdf, f"{name}", rules, "BOOLEAN_ONLY")
        failed = [r for r in rules if out[r.id].failed and out[r.id].error is None]
        if failed:
            out.update(self._run(pdf, f"{name}.failures", failed, "SUMMARY"))
        del pdf
        return out, time.perf_counter() - started

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
        result = vd.run(
            batch_parameters={"dataframe": pdf},
            result_format={"result_format": result_format, "partial_unexpected_count": MAX_EXAMPLES},
        )
        out: dict[str, EngineResult] = {r.id: EngineResult(failed=True, error="no result") for r in rules}
        for er in result.results:
            config = er.expectation_config
            rule_id = (config.meta or {}).get("rule_id") if config is not None else None
            if rule_id in out:
                out[rule_id] = _result(er)
        return out

    def build_docs(self) -> None:
        if self.docs_dir is not None:
            self.context.build_data_docs(site_names=["dc002"])


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
