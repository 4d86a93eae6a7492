"""Ingest and the mess-handling rules: each rule has a row it repairs or quarantines (with file, row,
column, rule and the raw values) and a clean row it leaves alone; structural problems fail with one line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from dc003.contracts import load_dc002
from dc003.data.clean import Cleaned, Reference, check_reject_share, clean_file
from dc003.data.ingest import ROW, open_input, open_inputs
from dc003.errors import Dc003Error

from .test_dataset_support import (
    CONTRACT,
    CUSTOMER_COLUMNS,
    TRANSACTION_COLUMNS,
    aid,
    article,
    cid,
    customer,
    small_raw,
    tx,
    write_csv,
    write_raw,
)


def _clean(raw: Path, name: str, **kw: Any) -> Cleaned:
    c = load_dc002(CONTRACT)
    spec = c.raw.get(name)
    assert spec is not None
    return clean_file(c, open_input(raw, name, spec), **kw)


def _rejected(cleaned: Cleaned) -> dict[int, tuple[str, str]]:
    return {r["row"]: (r["rule"], r["column"]) for r in cleaned.quarantine.iter_rows(named=True)}


def _transactions(raw: Path, rows: list[dict[str, Any]], *, batched: bool = True) -> Cleaned:
    write_raw(raw, [article(i) for i in range(3)], [customer(i) for i in range(3)], rows)
    c = load_dc002(CONTRACT)
    inputs = open_inputs(raw, c)
    arts = clean_file(c, inputs["articles"]).kept.sort("article_id").with_row_index("item_idx")
    custs = clean_file(c, inputs["customers"]).kept.sort("customer_id").with_row_index("user_idx")
    refs = [
        Reference("customer_id", custs.select("customer_id", pl.col("user_idx").cast(pl.Int32)), "user_idx"),
        Reference("article_id", arts.select("article_id", pl.col("item_idx").cast(pl.Int32)), "item_idx"),
    ]
    return clean_file(c, inputs["transactions"], refs, batched=batched)


# ---------------------------------------------------------------- customers


def test_customer_rules(tmp_path: Path) -> None:
    rows = [
        customer(0),  # clean
        customer(1, fashion_news_frequency="None"),  # spelling variant -> NONE
        customer(2, club_member_status="GOLD"),  # unknown category -> null
        customer(3, age=""),  # missing age accepted
        customer(4, age="7"),  # out of range -> null
        customer(5, customer_id="xyz"),  # malformed id -> quarantine
        customer(0, age="55"),  # duplicate of row 1 -> quarantine, the first row is kept
        customer(6, age="abc", FN="yes"),  # unparseable age and flag -> null
    ]
    write_csv(tmp_path / "customers.csv", CUSTOMER_COLUMNS, rows)
    out = _clean(tmp_path, "customers")
    assert _rejected(out) == {
        6: ("malformed_customer_id", "customer_id"),
        7: ("duplicate_customer", "customer_id"),
    }
    q = out.quarantine.row(by_predicate=pl.col("row") == 7, named=True)
    assert q["file"].endswith("customers.csv") and json.loads(q["raw"])["age"] == "55"
    kept = {r["customer_id"]: r for r in out.kept.iter_rows(named=True)}
    assert kept[cid(0)]["age"] == 20.0  # the first of the duplicates
    assert kept[cid(1)]["fashion_news_frequency"] == "NONE"
    assert kept[cid(2)]["club_member_status"] is None
    assert kept[cid(3)]["age"] is None and kept[cid(4)]["age"] is None and kept[cid(6)]["age"] is None
    assert kept[cid(6)]["FN"] is None and kept[cid(1)]["FN"] == 1.0
    assert out.repairs["spelling_variant"] == 1 and out.repairs["unknown_category"] == 1
    assert out.repairs["invalid_age"] == 2 and out.repairs["invalid_flag"] == 1
    assert out.accepted["missing_age"] == 1


def test_clean_customers_are_left_alone(tmp_path: Path) -> None:
    write_csv(tmp_path / "customers.csv", CUSTOMER_COLUMNS, [customer(i) for i in range(4)])
    out = _clean(tmp_path, "customers")
    assert out.quarantine.height == 0 and out.kept.height == 4
    assert out.repairs["spelling_variant"] == 0 and out.repairs["invalid_age"] == 0
    assert out.kept["age"].to_list() == [20.0, 21.0, 22.0, 23.0]


# ---------------------------------------------------------------- articles


def test_article_rules(tmp_path: Path) -> None:
    from .test_dataset_support import ARTICLE_COLUMNS

    rows = [
        article(0),
        article(1, detail_desc=""),  # missing text -> ""
        article(2, article_id="12345"),  # malformed id
        article(0, prod_name="again"),  # duplicate
        article(3, product_code="x1", department_name=""),  # unreadable code -> null; missing category kept
    ]
    write_csv(tmp_path / "articles.csv", ARTICLE_COLUMNS, rows)
    out = _clean(tmp_path, "articles")
    assert _rejected(out) == {
        3: ("malformed_article_id", "article_id"),
        4: ("duplicate_article", "article_id"),
    }
    kept = {r["article_id"]: r for r in out.kept.iter_rows(named=True)}
    assert kept[aid(1)]["detail_desc"] == "" and kept[aid(0)]["detail_desc"] == "A fine item number 0."
    assert kept[aid(3)]["product_code"] is None and kept[aid(3)]["department_name"] is None
    assert out.repairs["missing_text"] == 1 and out.repairs["unparseable_code"] == 1
    assert out.accepted["missing_category"] >= 1


# ---------------------------------------------------------------- transactions


@pytest.mark.parametrize("batched", [True, False])
def test_transaction_rules(tmp_path: Path, batched: bool) -> None:
    rows = [
        tx("2020-09-01", 0, 0),  # 1 clean
        tx("2020-09-01", 0, 0, sales_channel_id="3"),  # 2 unknown channel
        tx("2020-09-01", 1, 1, price="-0.01"),  # 3 non-positive price
        tx("2020-09-01", 1, 1, price="1.5"),  # 4 unscaled price
        tx("2020-09-01", 1, 1, price="cheap"),  # 5 unreadable price
        tx("2020-13-01", 1, 1),  # 6 malformed date
        tx("2017-01-01", 1, 1),  # 7 before the data period
        tx("2020-09-01", 9, 1),  # 8 unknown customer
        tx("2020-09-01", 1, 9),  # 9 unknown article
        tx("2020-09-01", 1, 1, customer_id="ABC"),  # 10 malformed customer id
        tx("2020-09-01", 1, 1, article_id=""),  # 11 missing article
        tx("2020-09-02", 2, 2, price="0.5"),  # 12 clean
    ]
    out = _transactions(tmp_path / "raw", rows, batched=batched)
    assert _rejected(out) == {
        2: ("unknown_sales_channel", "sales_channel_id"),
        3: ("price_out_of_range", "price"),
        4: ("price_out_of_range", "price"),
        5: ("malformed_price", "price"),
        6: ("malformed_date", "t_dat"),
        7: ("date_out_of_range", "t_dat"),
        8: ("unknown_customer", "customer_id"),
        9: ("unknown_article", "article_id"),
        10: ("malformed_customer_ref", "customer_id"),
        11: ("missing_value", "article_id"),
    }
    assert out.rows_read == 12
    assert out.kept[ROW].to_list() == [1, 12]
    assert out.kept.columns == [ROW, "t_dat", "user_idx", "item_idx", "price", "sales_channel_id"]
    raw = json.loads(out.quarantine.row(by_predicate=pl.col("row") == 2, named=True)["raw"])
    assert raw == dict(zip(TRANSACTION_COLUMNS, ["2020-09-01", cid(0), aid(0), "0.0254", "3"], strict=True))


def test_reject_share_is_bounded_and_named(tmp_path: Path) -> None:
    rows = [tx("2020-09-01", 0, 0) for _ in range(50)] + [tx("2020-09-01", 0, 0, sales_channel_id="3")]
    out = _transactions(tmp_path / "raw", rows)
    with pytest.raises(Dc003Error) as exc:
        check_reject_share(load_dc002(CONTRACT), out)  # 1 of 51 rows: 1.96 % > 1 %
    msg = str(exc.value)
    where = tmp_path / "raw" / "transactions_train.csv"
    assert msg.startswith(
        f"{where}: sales_channel_id: row 51: unknown_sales_channel: 1 of 51 rows quarantined"
    )
    assert "\n" not in msg
    ok = _transactions(tmp_path / "raw2", [tx("2020-09-01", 0, 0) for _ in range(200)] + rows[-1:])
    check_reject_share(load_dc002(CONTRACT), ok)  # 1 of 201 rows: 0.5 % is within the share


def test_parquet_and_csv_inputs_clean_alike(tmp_path: Path) -> None:
    raw = small_raw(tmp_path / "csv")
    pq = tmp_path / "pq"
    pq.mkdir()
    for name in ("articles", "customers", "transactions_train"):
        pl.read_csv(raw / f"{name}.csv", infer_schema=False).write_parquet(pq / f"{name}.parquet")
    a, b = _clean(raw, "customers"), _clean(pq, "customers")
    assert a.kept.equals(b.kept)
    c = load_dc002(CONTRACT)
    ta = clean_file(c, open_inputs(raw, c)["transactions"], batched=True)
    tb = clean_file(c, open_inputs(pq, c)["transactions"], batched=True)
    assert ta.quarantine.height == tb.quarantine.height == 0  # without references nothing is an orphan
    assert ta.kept.equals(tb.kept)


# ---------------------------------------------------------------- structural failures


def test_missing_column_fails_naming_file_and_column(tmp_path: Path) -> None:
    raw = small_raw(tmp_path / "raw")
    df = pl.read_csv(raw / "customers.csv", infer_schema=False).drop("age")
    df.write_csv(raw / "customers.csv")
    with pytest.raises(Dc003Error) as exc:
        open_inputs(raw, load_dc002(CONTRACT))
    assert str(exc.value).startswith(f"{raw / 'customers.csv'}: age: required column is missing")


def test_optional_column_may_be_absent(tmp_path: Path) -> None:
    raw = small_raw(tmp_path / "raw")
    pl.read_csv(raw / "customers.csv", infer_schema=False).drop("postal_code").write_csv(
        raw / "customers.csv"
    )
    out = _clean(raw, "customers")
    assert out.kept["postal_code"].null_count() == out.kept.height


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "file is empty"),
        (b"t_dat,customer_id,article_id,price,sales_channel_id\n", "file has no data rows"),
    ],
)
def test_empty_files_fail(tmp_path: Path, content: bytes, message: str) -> None:
    raw = small_raw(tmp_path / "raw")
    (raw / "transactions_train.csv").write_bytes(content)
    with pytest.raises(Dc003Error) as exc:
        _transactions_only(raw)
    assert str(exc.value) == f"{raw / 'transactions_train.csv'}: {message}"


def _transactions_only(raw: Path) -> Cleaned:
    c = load_dc002(CONTRACT)
    return clean_file(c, open_inputs(raw, c)["transactions"], batched=True)


def test_unreadable_files_fail_in_one_line(tmp_path: Path) -> None:
    raw = small_raw(tmp_path / "raw")
    (raw / "articles.csv").unlink()
    (raw / "articles.parquet").write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(Dc003Error) as exc:
        open_inputs(raw, load_dc002(CONTRACT))
    assert str(exc.value).startswith(f"{raw / 'articles.parquet'}: cannot read as PARQUET")
    (raw / "articles.parquet").unlink()
    with pytest.raises(Dc003Error, match=r"articles\.csv: file not found"):
        open_inputs(raw, load_dc002(CONTRACT))


def test_ragged_csv_fails_in_one_line(tmp_path: Path) -> None:
    raw = small_raw(tmp_path / "raw")
    with (raw / "transactions_train.csv").open("a") as fh:
        fh.write("2020-09-01,a,b,c,d,e,f\n")
    with pytest.raises(Dc003Error) as exc:
        _transactions_only(raw)
    assert str(exc.value).startswith(f"{raw / 'transactions_train.csv'}: cannot parse as CSV")
    assert "\n" not in str(exc.value)


def test_both_formats_present_is_ambiguous(tmp_path: Path) -> None:
    raw = small_raw(tmp_path / "raw")
    pl.read_csv(raw / "customers.csv").write_parquet(raw / "customers.parquet")
    with pytest.raises(Dc003Error, match="ambiguous"):
        open_inputs(raw, load_dc002(CONTRACT))
