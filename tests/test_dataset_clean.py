"""Ingest and the mess-handling rules: each rule has a row it repairs or quarantines (with file, row,
column, rule and the raw values) and a clean row it leaves alone; structural problems fail with one line."""

from __future__ import annotations

import csv
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


@pytest.mark.parametrize("name", ["transactions", "articles"])  # block reader (pyarrow) and scan (polars)
@pytest.mark.parametrize("extra", [",e,f", ""])  # more or fewer fields than the header
def test_ragged_csv_fails_naming_the_line(tmp_path: Path, name: str, extra: str) -> None:
    raw = small_raw(tmp_path / "raw")
    path = raw / ("transactions_train.csv" if name == "transactions" else "articles.csv")
    lines = path.read_text().splitlines()
    header = lines[0].count(",") + 1
    row = "2020-09-01,a" + (",x" * (header - 2)) + extra if extra else "2020-09-01,a"
    fields = row.count(",") + 1
    lines.insert(4, row)  # line 5, amid good rows
    path.write_text("\n".join(lines) + "\n")
    c = load_dc002(CONTRACT)
    with pytest.raises(Dc003Error) as exc:
        clean_file(c, open_inputs(raw, c)[name], batched=name == "transactions")
    assert str(exc.value).startswith(
        f"{path}: line 5: ragged_row: {fields} fields where the header has {header}"
    ), str(exc.value)
    assert "\n" not in str(exc.value)


def test_both_formats_present_is_ambiguous(tmp_path: Path) -> None:
    raw = small_raw(tmp_path / "raw")
    pl.read_csv(raw / "customers.csv").write_parquet(raw / "customers.parquet")
    with pytest.raises(Dc003Error, match="ambiguous"):
        open_inputs(raw, load_dc002(CONTRACT))


# ---------------------------------------------------------------- ids that lost their leading zero


def test_nine_digit_article_refs_are_padded_and_counted(tmp_path: Path) -> None:
    rows = [
        tx("2020-09-01", 0, 1, article_id=aid(1)[1:]),  # 1 nine digits: padded, finds article 1
        tx("2020-09-01", 1, 2),  # 2 clean
        tx("2020-09-01", 0, 1, article_id=aid(1)[2:]),  # 3 eight digits: still malformed
        tx("2020-09-01", 0, 1, article_id="0" + aid(1)),  # 4 eleven digits: malformed
        tx("2020-09-01", 0, 1, article_id="999999999"),  # 5 padded, but no such article: orphan
        tx("2020-09-01", 0, 1, article_id=f" {aid(1)[1:]}"),  # 6 a space is no digit: malformed
    ]
    out = _transactions(tmp_path / "raw", rows)
    assert _rejected(out) == {
        3: ("malformed_article_ref", "article_id"),
        4: ("malformed_article_ref", "article_id"),
        5: ("unknown_article", "article_id"),
        6: ("malformed_article_ref", "article_id"),
    }
    assert out.kept[ROW].to_list() == [1, 2]
    items = sorted(aid(i) for i in range(3))  # item_idx is the order of the sorted article ids
    assert out.kept["item_idx"].to_list() == [items.index(aid(1)), items.index(aid(2))]
    assert out.repairs["padded_article_ref"] == 1  # kept rows repaired (row 5 is counted as rejected)
    raw = json.loads(out.quarantine.row(by_predicate=pl.col("row") == 5, named=True)["raw"])
    assert raw["article_id"] == "999999999"  # the quarantine keeps what the file said


def test_int64_article_ids_in_parquet_are_padded(tmp_path: Path) -> None:
    from .test_dataset_support import ARTICLE_COLUMNS

    write_csv(tmp_path / "csv" / "articles.csv", ARTICLE_COLUMNS, [article(i) for i in range(5)])
    df = pl.read_csv(tmp_path / "csv" / "articles.csv", infer_schema=False)
    numeric = df.with_columns(pl.col("article_id").cast(pl.Int64))
    (tmp_path / "pq").mkdir()
    numeric.write_parquet(tmp_path / "pq" / "articles.parquet")
    assert numeric["article_id"].to_list()[0] == int(aid(0)) < 10**9  # the zero is really gone
    a, b = _clean(tmp_path / "csv", "articles"), _clean(tmp_path / "pq", "articles")
    assert a.kept.equals(b.kept) and b.quarantine.height == 0
    assert a.repairs["padded_article_id"] == 0 and b.repairs["padded_article_id"] == 5


# ---------------------------------------------------------------- bytes that are not UTF-8

BAD = b"\xe9\xff"  # latin-1 e-acute, then a byte no UTF-8 text holds


def _with_bad_bytes(path: Path) -> None:
    path.write_bytes(path.read_bytes().replace(b"@BAD@", BAD))


def test_text_that_is_not_utf8_quarantines_its_row(tmp_path: Path) -> None:
    from .test_dataset_support import ARTICLE_COLUMNS

    rows = [
        article(0),
        article(1, prod_name="Item @BAD@ 1"),  # text the item tower reads: quarantined
        article(2, index_name="@BAD@"),  # unused text: set to null, counted
        article(3),
    ]
    write_csv(tmp_path / "articles.csv", ARTICLE_COLUMNS, rows)
    _with_bad_bytes(tmp_path / "articles.csv")
    out = _clean(tmp_path, "articles")
    assert _rejected(out) == {2: ("invalid_text", "prod_name")}
    q = out.quarantine.row(0, named=True)
    assert q["file"].endswith("articles.csv") and "UTF-8" in q["reason"]
    assert json.loads(q["raw"])["prod_name"] == "Item \ufffd\ufffd 1"  # as read: one U+FFFD per bad byte
    kept = {r["article_id"]: r for r in out.kept.iter_rows(named=True)}
    assert set(kept) == {aid(0), aid(2), aid(3)}
    assert kept[aid(2)]["index_name"] is None and kept[aid(3)]["prod_name"] == "Item 3"
    assert out.repairs["invalid_unused_text"] == 1


def test_bytes_that_are_not_utf8_elsewhere(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    write_raw(
        raw,
        [article(i) for i in range(3)],
        [customer(0), customer(1, postal_code="@BAD@"), customer(2)],
        [tx("2020-09-01", 0, 0), tx("2020-09-01", 1, 1, customer_id="@BAD@"), tx("2020-09-02", 2, 2)],
    )
    for name in ("customers.csv", "transactions_train.csv"):
        _with_bad_bytes(raw / name)
    customers = _clean(raw, "customers")
    assert customers.quarantine.height == 0 and customers.repairs["invalid_postal_code"] == 1
    assert customers.kept["postal_code"].to_list() == ["abc", None, "abc"]
    # the block reader (transactions): the id's pattern rejects the row, the file is read
    tx_out = _transactions_only(raw)
    assert _rejected(tx_out) == {2: ("malformed_customer_ref", "customer_id")}
    assert tx_out.kept[ROW].to_list() == [1, 3]


# ---------------------------------------------------------------- a file cut mid-row


@pytest.mark.parametrize("name", ["transactions_train.csv", "articles.csv"])
@pytest.mark.parametrize("cut", [2, 9, 60])  # bytes cut off the end: the CRLF, a value, fields
def test_file_cut_mid_row_is_refused_naming_its_line(tmp_path: Path, name: str, cut: int) -> None:
    raw = small_raw(tmp_path / "raw")
    path = raw / name
    data = path.read_bytes()
    path.write_bytes(data[:-cut])
    lines = data[:-cut].decode().split("\n")
    header = lines[0].strip().split(",")
    fields = len(next(csv.reader([lines[-1]])))
    column = header[fields] if fields < len(header) else header[-1]
    with pytest.raises(Dc003Error) as exc:
        open_inputs(raw, load_dc002(CONTRACT))
    msg = str(exc.value)
    assert msg.startswith(f"{path}: {column}: line {len(lines)}: truncated_row: the file ends mid-row"), msg
    assert "\n" not in msg
