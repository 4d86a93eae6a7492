"""The shortcuts that make validation fast keep its verdicts: the pandas frame GE validates holds the same
values as the stored table, and GE's memory does not grow with every frame it validated."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from dc003.data.validation import gx_engine
from dc003.data.validation.gx_engine import GxRun, to_pandas
from dc003.data.validation.rules import Rule


def test_to_pandas_keeps_values_and_types_and_widens_only_what_it_is_asked_to() -> None:
    df = pl.DataFrame(
        {
            "i32": pl.Series([1, 2, 3], dtype=pl.Int32),
            "n16": pl.Series([1, None, 3], dtype=pl.Int16),
            "f32": pl.Series([0.5, 1.5, None], dtype=pl.Float32),
            "s": ["x", None, "z"],
            "flag": [True, None, False],
        }
    )
    stored = to_pandas(df)
    assert [str(t) for t in stored.dtypes] == ["int32", "Int16", "float32", "str", "boolean"]
    wide = to_pandas(df, {"i32", "n16", "f32"})
    assert [str(t) for t in wide.dtypes] == ["int64", "float64", "float64", "str", "boolean"]
    for frame in (stored, wide):
        assert frame["i32"].tolist() == [1, 2, 3]
        assert frame["n16"].isna().tolist() == [False, True, False]
        assert frame["n16"][[0, 2]].tolist() == [1, 3]
        assert frame["s"].isna().tolist() == [False, True, False]


def test_rules_on_columns_with_nulls_report_rows_of_the_whole_table() -> None:
    """Rules about a column holding nulls run on a batch of only their columns; the rows they report are
    still the table's."""
    rules = [
        Rule("t.parquet", "between", "a", "range", "test", {"min": 0, "max": 100}),
        Rule("t.parquet", "pair_equal", "a", "same", "test", {"other": "b"}),
        Rule("t.parquet", "between", "c", "range", "test", {"min": 0, "max": 1}),
    ]
    gx = GxRun(None)
    df = pl.DataFrame(
        {
            "a": pl.Series([5, None, 7, 101], dtype=pl.Int16),
            "b": pl.Series([5, 6, 8, 101], dtype=pl.Int32),
            "c": pl.Series([0, 1, 1, 2], dtype=pl.Int8),
        }
    )
    res, _ = gx.validate(df, "t.parquet", rules)
    assert [res[r.id].count for r in rules] == [1, 1, 1]
    assert [[e["row"] for e in res[r.id].examples] for r in rules] == [[3], [2], [3]]
    assert res[rules[0].id].examples[0]["value"] == 101


def test_gx_keeps_no_converted_frame_after_validating_it(monkeypatch: pytest.MonkeyPatch) -> None:
    converted: list[weakref.ref[Any]] = []
    real = gx_engine.to_pandas

    def spy(df: pl.DataFrame, widen: Any = ()) -> Any:
        out = real(df, widen)
        converted.append(weakref.ref(out))
        return out

    monkeypatch.setattr(gx_engine, "to_pandas", spy)
    rules = [
        Rule("t.parquet", "dtype", "a", "type", "test", {"type": "int64"}),
        Rule("t.parquet", "between", "a", "range", "test", {"min": 0, "max": 5}),
    ]
    res, _ = GxRun(None).validate(pl.DataFrame({"a": [1, 2, 9]}), "t.parquet", rules)
    assert [res[r.id].failed for r in rules] == [False, True]
    gc.collect()
    assert len(converted) == 2  # the stored types, then the values
    assert all(ref() is None for ref in converted)


def test_a_view_reads_only_its_columns_and_a_missing_one_fails_the_view(tmp_path: Path) -> None:
    from dc003.contracts import load_dc002
    from dc003.data.validation.frames import DatasetFrames

    pl.DataFrame({"user_idx": [0, 0], "day": [1, 2], "quantity": [1, 3], "extra": ["x", "y"]}).write_parquet(
        tmp_path / "interactions.parquet"
    )
    frames = DatasetFrames(tmp_path, load_dc002())
    per_user = frames.build("interactions.parquet:per_user_idx", [])
    assert per_user.to_dict(as_series=False) == {"user_idx": [0], "quantity": [4]}
    with pytest.raises(pl.exceptions.ColumnNotFoundError, match="hist_start"):
        frames.build("interactions.parquet:history", [])
