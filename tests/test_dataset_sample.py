"""The real H&M sample (../shared/data/hm-sample, skipped when absent) through the same code: the build
and validation pass, and each corruption of the sample is either quarantined with its reason or fails
with a message naming file, column, row and rule — never dropped silently, never a traceback."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest

from dc003.contracts import load_dc002
from dc003.data.build import BuildSettings
from dc003.data.ingest import open_inputs
from dc003.data.raw import make_raw
from dc003.errors import Dc003Error
from dc003.params.data import DataParams

from .conftest import HM_SAMPLE, needs_hm_sample
from .test_dataset_support import CONTRACT, build

pytestmark = needs_hm_sample
SETTINGS = BuildSettings(max_history=50, train_window_days=84, popularity_window_days=28)


def _kaggle_raw(out: Path) -> Path:
    params = DataParams(source="kaggle", scale="default", kaggle_dir=str(HM_SAMPLE))
    make_raw(out, params, seed=0, contract=load_dc002(CONTRACT))
    return out


@pytest.fixture(scope="module")
def sample_raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _kaggle_raw(tmp_path_factory.mktemp("sample") / "raw")


def test_raw_stage_copies_the_kaggle_files_verbatim(sample_raw: Path) -> None:
    source = json.loads((sample_raw / "source.json").read_text())
    assert source["source"] == "kaggle"
    assert set(source["files"]) == {"articles.parquet", "customers.csv", "transactions_train.csv"}
    assert (sample_raw / "customers.csv").read_bytes() == (HM_SAMPLE / "customers.csv").read_bytes()


def test_corruptions_are_quarantined_with_their_reason(sample_raw: Path, tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    shutil.copytree(sample_raw, raw)
    tx = pl.read_csv(raw / "transactions_train.csv", infer_schema=False)
    # rows are 1-based records: record r is tx row r - 1
    edits = {
        10: ("sales_channel_id", "3", "unknown_sales_channel"),
        20: ("price", "-0.0169", "price_out_of_range"),
        30: ("article_id", "0999999999", "unknown_article"),
        40: ("t_dat", "2020-02-30", "malformed_date"),
    }
    for record, (column, value, _) in edits.items():
        tx = tx.with_columns(
            pl.when(pl.int_range(pl.len()) == record - 1)
            .then(pl.lit(value))
            .otherwise(pl.col(column))
            .alias(column)
        )
    tx.write_csv(raw / "transactions_train.csv")
    customers = pl.read_csv(raw / "customers.csv", infer_schema=False)
    pl.concat([customers, customers.slice(5, 1)]).write_csv(
        raw / "customers.csv"
    )  # a duplicated customer row

    manifest = build(raw, tmp_path / "dataset", SETTINGS)
    q = pl.read_parquet(tmp_path / "dataset" / "quarantine.parquet")
    got = {
        (r["file"].rsplit("/", 1)[-1], r["row"]): (r["column"], r["rule"]) for r in q.iter_rows(named=True)
    }
    for record, (column, _, rule) in edits.items():
        assert got[("transactions_train.csv", record)] == (column, rule)
    assert got[("customers.csv", customers.height + 1)] == ("customer_id", "duplicate_customer")
    assert len(got) == 5  # nothing else was touched
    row = q.filter(pl.col("rule") == "price_out_of_range").row(0, named=True)
    assert json.loads(row["raw"])["price"] == "-0.0169" and row["reason"]
    assert manifest["raw"]["transactions"]["rejected"] == 4
    inter = pl.read_parquet(tmp_path / "dataset" / "interactions.parquet")
    assert inter["quantity"].sum() == tx.height - 4  # every other row is in the dataset


def _drop_column(raw: Path) -> None:
    df = pl.read_csv(raw / "customers.csv", infer_schema=False)
    df.drop("club_member_status").write_csv(raw / "customers.csv")


def _empty_file(raw: Path) -> None:
    (raw / "transactions_train.csv").write_bytes(b"")


@pytest.mark.parametrize(
    ("corrupt", "message"),
    [
        (_drop_column, "customers.csv: club_member_status: required column is missing"),
        (_empty_file, "transactions_train.csv: file is empty"),
    ],
)
def test_structural_corruptions_fail_in_one_line(
    sample_raw: Path, tmp_path: Path, corrupt: Callable[[Path], None], message: str
) -> None:
    raw = tmp_path / "raw"
    shutil.copytree(sample_raw, raw)
    corrupt(raw)
    with pytest.raises(Dc003Error) as exc:
        build(raw, tmp_path / "dataset", SETTINGS)
    assert message in str(exc.value) and "\n" not in str(exc.value)
    assert not (tmp_path / "dataset").exists()


def test_sample_has_the_real_mess(sample_raw: Path) -> None:
    inputs = open_inputs(sample_raw, load_dc002(CONTRACT))
    assert inputs["articles"].format == "parquet" and inputs["customers"].format == "csv"


@pytest.mark.slow
def test_sample_builds_and_validates_with_explicit_overflow(sample_raw: Path, tmp_path: Path) -> None:
    from dc003.contracts import load_dc003
    from dc003.data.validation.run import failure_lines, validate_dataset

    from .conftest import REPO

    manifest = build(sample_raw, tmp_path / "dataset", SETTINGS)
    assert manifest["raw"]["articles"]["repaired_by_rule"]["missing_text"] == 416  # missing detail_desc
    assert manifest["raw"]["customers"]["accepted_by_rule"]["missing_age"] > 0
    s = validate_dataset(
        tmp_path / "dataset", load_dc002(CONTRACT), load_dc003(REPO / "contracts/dc003.yaml")
    )
    assert s["passed"], failure_lines(s)
    assert s["repaired"]["articles"]["missing_text"] == 416
    overflow = {o["feature"]: o for o in s["vocabulary_overflow"]}
    assert (
        overflow["department_name"]["distinct_values"] == 250
        and overflow["department_name"]["vocab_size"] == 30
    )
    assert overflow["section_name"]["distinct_values"] == 56 and overflow["section_name"]["vocab_size"] == 25
    assert (
        overflow["color_group_name"]["distinct_values"] == 50
        and overflow["color_group_name"]["overflow_values"] == 1
    )
    lines = failure_lines(s)
    for column in ("department_name", "section_name", "colour_group_name"):
        assert any(line.startswith(f"overflow: items.{column}:") for line in lines)


def test_int64_article_ids_build_the_same_dataset(sample_raw: Path, tmp_path: Path) -> None:
    """The public files read through pandas: article_id as int64 (9 digits) in both files."""
    raw = tmp_path / "raw"
    shutil.copytree(sample_raw, raw)
    tx = pl.read_csv(
        raw / "transactions_train.csv", infer_schema=False, schema_overrides={"article_id": pl.Int64}
    )
    tx.write_csv(raw / "transactions_train.csv")
    articles = pl.read_parquet(raw / "articles.parquet")
    articles.with_columns(pl.col("article_id").cast(pl.Int64)).write_parquet(raw / "articles.parquet")
    written = pl.read_csv(raw / "transactions_train.csv", infer_schema=False)["article_id"]
    assert written.str.len_chars().unique().to_list() == [9]  # every id lost its leading zero
    a = build(sample_raw, tmp_path / "a", SETTINGS)
    b = build(raw, tmp_path / "b", SETTINGS)
    assert a["hashes"] == b["hashes"]  # every dataset file identical, byte for byte
    assert b["raw"]["articles"]["repaired_by_rule"]["padded_article_id"] == articles.height
    assert b["raw"]["transactions"]["repaired_by_rule"]["padded_article_ref"] == tx.height
    assert a["raw"]["transactions"]["repaired_by_rule"]["padded_article_ref"] == 0
