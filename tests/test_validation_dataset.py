"""The validation of a built DC-002 dataset: a clean dataset passes both engines; each kind of breach
(point in time, leaked features, encodings, keys, references, cold sets, splits) is rejected by both,
naming the file, column, rows and rule."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from dc003.contracts import load_dc002, load_dc003
from dc003.data.build import BuildSettings
from dc003.data.validation.run import failure_lines, validate_dataset
from dc003.errors import Dc003Error

from .conftest import REPO
from .test_dataset_support import build, synthetic_raw

Summary = dict[str, Any]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("val")
    raw = synthetic_raw(root / "raw")
    out = root / "dataset"
    build(raw, out, BuildSettings(max_history=50, train_window_days=84, popularity_window_days=28))
    return out


def _validate(path: Path, only: set[str] | None = None, docs: Path | None = None) -> Summary:
    return validate_dataset(
        path,
        load_dc002(REPO / "contracts/dc002.yaml"),
        load_dc003(REPO / "contracts/dc003.yaml"),
        docs_dir=docs,
        only=only,
    )


def _copy(dataset: Path, tmp_path: Path) -> Path:
    out = tmp_path / "dataset"
    shutil.copytree(dataset, out)
    return out


def _edit(path: Path, fn: Callable[[pl.DataFrame], pl.DataFrame]) -> None:
    fn(pl.read_parquet(path)).write_parquet(path)


def _failed(summary: Summary, rule: str) -> list[dict[str, Any]]:
    return [f for f in summary["failures"] if f["rule"] == rule]


def _set(df: pl.DataFrame, column: str, row: int, value: Any) -> pl.DataFrame:
    values = df[column].to_list()
    values[row] = value
    return df.with_columns(pl.Series(column, values, dtype=df.schema[column]))


def test_clean_dataset_passes_the_interaction_rules(dataset: Path) -> None:
    s = _validate(dataset, only={"interactions.parquet", "cold_users.parquet", "cold_items.parquet"})
    assert s["counts"]["errors"] == 0 and s["passed"]
    assert s["counts"]["rules"] > 30 and s["counts"]["engine_disagreements"] == 0


def test_history_with_an_item_after_its_target_is_rejected(dataset: Path, tmp_path: Path) -> None:
    out = _copy(dataset, tmp_path)
    inter = pl.read_parquet(out / "interactions.parquet")
    user, day = inter["user_idx"].to_numpy(), inter["day"].to_numpy()
    # a row whose next row is the same user on a later day: let its history run one row past itself
    i = int(np.flatnonzero((user[:-1] == user[1:]) & (day[1:] > day[:-1]))[0])
    _edit(out / "interactions.parquet", lambda df: _set(df, "hist_end", i, i + 2))
    s = _validate(out, only={"interactions.parquet"})
    assert not s["passed"]
    (leak,) = _failed(s, "point_in_time.before_target")
    assert leak["count"] == 1 and leak["examples"][0]["row"] == i and leak["column"] == "hist_last_day"
    assert leak["engines"]["pandera"]["failed"] and leak["engines"]["great_expectations"]["failed"]
    assert any("point_in_time.before_target" in line and f"row {i}" in line for line in failure_lines(s))
    assert _failed(s, "point_in_time.complete")  # and it is no longer the user's last-50 slice


def test_leaked_user_feature_is_rejected(dataset: Path, tmp_path: Path) -> None:
    out = _copy(dataset, tmp_path)
    _edit(out / "users_test.parquet", lambda df: df.with_columns(pl.col("total_purchases") + 1))
    s = _validate(out, only={"users_test.parquet"})
    (f,) = _failed(s, "point_in_time.features.quantity_before_cutoff")
    assert (
        f["file"].endswith("users_test.parquet")
        and f["count"] == pl.read_parquet(out / "users_test.parquet").height
    )


def test_window_purchases_counted_after_the_cutoff_are_rejected(dataset: Path, tmp_path: Path) -> None:
    out = _copy(dataset, tmp_path)
    _edit(out / "items_val.parquet", lambda df: _set(df, "window_purchases", 3, 10_000))
    s = _validate(out, only={"items_val.parquet"})
    (f,) = _failed(s, "point_in_time.features.quantity_in_window_before_cutoff")
    assert f["examples"][0]["row"] == 3


def test_encodings_must_match_vocab_json_and_vocab_size(dataset: Path, tmp_path: Path) -> None:
    out = _copy(dataset, tmp_path)
    items = pl.read_parquet(out / "items.parquet")
    row = int(np.flatnonzero(items["department_name_idx"].to_numpy() == 1)[0])
    _edit(
        out / "items.parquet",
        lambda df: _set(_set(df, "department_name_idx", row, 2), "section_name_idx", 0, 25),
    )
    s = _validate(out, only={"items.parquet"})
    (enc,) = [f for f in _failed(s, "encoding") if f["column"] == "department_name_idx"]
    assert enc["examples"][0]["row"] == row
    (size,) = _failed(s, "vocab_size")
    assert size["column"] == "section_name_idx" and "dc003" in size["source"]


def test_keys_dense_indices_and_references(dataset: Path, tmp_path: Path) -> None:
    out = _copy(dataset, tmp_path)
    n_items = pl.read_parquet(out / "items.parquet").height
    _edit(out / "interactions.parquet", lambda df: _set(df, "item_idx", 5, n_items))
    _edit(out / "cold_users.parquet", lambda df: pl.concat([df, df.head(1)]))
    s = _validate(out, only={"interactions.parquet", "cold_users.parquet"})
    (ref,) = _failed(s, "references.items")
    assert ref["column"] == "item_idx" and ref["examples"][0]["row"] == 5
    assert _failed(s, "key")  # (split, user_idx) repeated in cold_users
    assert all(f["engines_agree"] for f in s["failures"])


def test_cold_sets_and_split_labels_are_recomputed(dataset: Path, tmp_path: Path) -> None:
    out = _copy(dataset, tmp_path)
    _edit(out / "cold_items.parquet", lambda df: df.tail(df.height - 1))
    _edit(out / "interactions.parquet", lambda df: _set(df, "split", 0, "test"))
    s = _validate(out, only={"interactions.parquet", "cold_items.parquet"})
    assert _failed(s, "point_in_time.cold_set")
    (lab,) = _failed(s, "split_assignment")
    assert lab["examples"][0]["row"] == 0


def test_missing_column_fails_its_type_rule(dataset: Path, tmp_path: Path) -> None:
    out = _copy(dataset, tmp_path)
    _edit(out / "cold_items.parquet", lambda df: df.drop("split"))
    s = _validate(out, only={"cold_items.parquet"})
    (f,) = [f for f in _failed(s, "type") if f["column"] == "split"]
    assert f["engines"]["pandera"]["failed"] and f["engines"]["great_expectations"]["failed"]
    assert s["counts"]["skipped_missing_column"] > 0


def test_missing_file_is_one_line(dataset: Path, tmp_path: Path) -> None:
    out = _copy(dataset, tmp_path)
    (out / "users_val.parquet").unlink()
    with pytest.raises(Dc003Error) as exc:
        _validate(out)
    assert str(exc.value) == f"{out / 'users_val.parquet'}: file not found (a DC-002 dataset file)"


@pytest.mark.slow
def test_whole_dataset_passes_and_writes_docs(dataset: Path, tmp_path: Path) -> None:
    s = _validate(dataset, docs=tmp_path / "docs")
    assert s["passed"], failure_lines(s)
    assert s["counts"]["engine_disagreements"] == 0
    assert (tmp_path / "docs" / "index.html").is_file()
    frames = set(s["frames"])
    for f in (
        "items.parquet",
        "users_train.parquet",
        "users_test.parquet",
        "items_val.parquet",
        "quarantine.parquet",
    ):
        assert f in frames
    overflow = {o["feature"]: o for o in s["vocabulary_overflow"]}
    assert (
        overflow["department_name"]["policy"] == "top_k_plus_unknown"
        and overflow["department_name"]["vocab_size"] == 30
    )
    json.dumps(s)  # the summary is a JSON document (a DVC metric)


@pytest.mark.slow
def test_cli_validate_exits_1_and_names_the_breach(dataset: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from dc003.cli import app

    out = _copy(dataset, tmp_path)
    _edit(out / "interactions.parquet", lambda df: _set(df, "hist_end", 1, 2))
    res = CliRunner().invoke(app, ["data", "validate", str(out)])
    assert res.exit_code == 1
    errors = [line for line in res.stderr.splitlines() if line.startswith("error: ")]
    assert any(
        "interactions.parquet" in line and "point_in_time" in line and "row 1" in line for line in errors
    )
    assert "Traceback" not in res.output


@pytest.mark.parametrize(
    ("file", "column", "untouched"),
    [
        ("users_train.parquet", "user_idx", "users_val.parquet"),
        # interactions feed the recomputed features, history slices and cold sets of other files
        ("interactions.parquet", "user_idx", "users_train.parquet"),
    ],
)
def test_a_type_error_is_reported_once_at_its_source(
    dataset: Path, tmp_path: Path, file: str, column: str, untouched: str
) -> None:
    out = _copy(dataset, tmp_path)
    _edit(out / file, lambda df: df.with_columns(pl.col(column).cast(pl.String)))
    s = _validate(out)
    errors = [f for f in s["failures"] if f["severity"] == "error"]
    assert len(errors) == 1 and s["counts"]["errors"] == 1, failure_lines(s)
    (e,) = errors
    assert e["file"] == str(out / file) and e["column"] == column and e["rule"] == "type"
    assert e["observed"] == "String" and e["not_run"] > 0
    assert s["counts"]["not_run_type_error"] == e["not_run"]
    (blocked,) = s["not_run"]
    assert blocked["column"] == column and blocked["rules"] == e["not_run"]
    if file == "interactions.parquet":  # the users files could not be recomputed: not run, not blamed
        assert untouched in blocked["frames"]
    lines = [line for line in failure_lines(s) if line.startswith("error:")]
    assert lines == [
        f"error: {out / file}: {column}: type: type int32, observed String "
        f"(tables.{'users_split' if file.startswith('users') else 'interactions'}.columns.{column}.type); "
        f"{e['not_run']} rule(s) reading it not run"
    ]
    # the untouched file's own rules still ran and passed
    assert s["frames"][untouched]["rows"] > 0 and "failed" not in s["frames"][untouched]


def test_a_type_error_outside_the_selected_files_is_still_reported(dataset: Path, tmp_path: Path) -> None:
    out = _copy(dataset, tmp_path)
    _edit(out / "interactions.parquet", lambda df: df.with_columns(pl.col("day").cast(pl.Int64)))
    s = _validate(out, only={"users_test.parquet"})
    (e,) = [f for f in s["failures"] if f["severity"] == "error"]
    assert e["file"].endswith("interactions.parquet") and e["column"] == "day" and e["observed"] == "Int64"
    assert not s["passed"]
