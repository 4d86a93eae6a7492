"""Pandera and Great Expectations enforce the same compiled rules: for every rule kind a tiny frame that
breaks it is rejected by both engines, and a clean frame passes both."""

from __future__ import annotations

from typing import Any

import polars as pl
import pytest

from dc003.data.validation.gx_engine import GxRun
from dc003.data.validation.pandera_engine import run_pandera
from dc003.data.validation.rules import KINDS, Rule

# kind -> (rule params, column, clean frame, breaking frames)
CASES: dict[str, tuple[dict[str, Any], str | None, dict[str, list[Any]], list[dict[str, list[Any]]]]] = {
    "dtype": (
        {"type": "int32"},
        "a",
        {"a": pl.Series([1, 2], dtype=pl.Int32)},  # type: ignore[dict-item]
        [{"a": pl.Series([1, 2], dtype=pl.Int64)}, {"b": [1, 2]}],  # type: ignore[list-item]
    ),
    "not_null": ({}, "a", {"a": [1, 2]}, [{"a": [1, None]}]),
    "between": (
        {"min": 0, "max": 10, "strict_min": True, "strict_max": False},
        "a",
        {"a": [1, 10, None]},
        [{"a": [0, 5]}, {"a": [5, 11]}],
    ),
    "in_set": ({"values": ["x", "y"]}, "a", {"a": ["x", "y", None]}, [{"a": ["x", "z"]}]),
    "pattern": (
        {"pattern": "^[0-9]{3}$"},
        "a",
        {"a": ["123", "456"]},
        [{"a": ["123", "12a"]}, {"a": ["1234"]}],
    ),
    "unique": ({}, "a", {"a": [1, 2, 3]}, [{"a": [1, 2, 1]}]),
    "compound_unique": (
        {"columns": ["a", "b"]},
        None,
        {"a": [1, 1, 2], "b": [1, 2, 1]},
        [{"a": [1, 1, 2], "b": [1, 1, 2]}],
    ),
    "increasing": ({"strictly": True}, "a", {"a": [1, 2, 5]}, [{"a": [1, 1, 2]}, {"a": [2, 1, 3]}]),
    "pair_less": ({"other": "b"}, "a", {"a": [1, 2, None], "b": [2, 3, 1]}, [{"a": [1, 3], "b": [2, 3]}]),
    "pair_equal": ({"other": "b"}, "a", {"a": [1, 2, None], "b": [1, 2, 5]}, [{"a": [1, 2], "b": [1, 3]}]),
    "mean_between": ({"min": 1.0, "max": 2.0}, "a", {"a": [1.0, 3.0, None]}, [{"a": [3.0, 4.0]}]),
    "median_between": ({"min": 2.0, "max": 3.0}, "a", {"a": [1.0, 2.5, 9.0]}, [{"a": [1.0, 1.5, 9.0]}]),
    "null_share_between": (
        {"min": 0.0, "max": 0.5},
        "a",
        {"a": [1.0, None, 2.0]},
        [{"a": [None, None, 2.0]}],
    ),
    "unique_count_at_most": ({"max": 2}, "a", {"a": ["x", "y", "x", None]}, [{"a": ["x", "y", "z"]}]),
}


def test_every_kind_has_a_parity_case() -> None:
    assert set(CASES) == set(KINDS)


@pytest.fixture(scope="module")
def gx() -> GxRun:
    return GxRun(None)


def _verdicts(gx: GxRun, kind: str, frame: dict[str, Any]) -> tuple[bool, bool]:
    params, column, _, _ = CASES[kind]
    rule = Rule(frame="t.parquet", kind=kind, column=column, name=kind, source="test", params=params)  # type: ignore[arg-type]
    df = pl.DataFrame(frame)
    pa_res, _ = run_pandera(df, "t.parquet", [rule])
    gx_res, _ = gx.validate(df, "t.parquet", [rule])
    return pa_res[rule.id].failed, gx_res[rule.id].failed


@pytest.mark.parametrize("kind", sorted(CASES))
def test_clean_frame_passes_both_engines(gx: GxRun, kind: str) -> None:
    assert _verdicts(gx, kind, CASES[kind][2]) == (False, False)


@pytest.mark.parametrize("kind", sorted(CASES))
def test_breaking_frames_fail_both_engines(gx: GxRun, kind: str) -> None:
    for frame in CASES[kind][3]:
        assert _verdicts(gx, kind, frame) == (True, True), frame


def test_both_engines_count_and_locate_row_failures(gx: GxRun) -> None:
    rule = Rule("t.parquet", "between", "a", "range", "test", {"min": 0, "max": 10})
    df = pl.DataFrame({"a": [1, 50, 3, -4, 5]})
    pa_res, _ = run_pandera(df, "t.parquet", [rule])
    gx_res, _ = gx.validate(df, "t.parquet", [rule])
    for res in (pa_res[rule.id], gx_res[rule.id]):
        assert res.failed and res.count == 2
        assert [e["row"] for e in res.examples] == [1, 3] and [str(e["value"]) for e in res.examples] == [
            "50",
            "-4",
        ]
