"""Helpers shared by the DC-002 tests: tiny raw inputs in the Kaggle layout (hand-written rows or the
synthetic generator at its tiny scale) and a build with small windows. The one test here checks the
hand-written writer itself round-trips."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
from pathlib import Path
from typing import Any

import dc003  # noqa: F401  (offline environment first)
from dc003.contracts import load_dc002, load_dc003
from dc003.data import synthetic
from dc003.data.build import BuildSettings, build_dataset

from .conftest import REPO

CONTRACT = REPO / "contracts" / "dc002.yaml"
# the Kaggle H&M layout, as the generator writes it (one definition: dc003.data.synthetic)
ARTICLE_COLUMNS = list(synthetic.ARTICLE_COLUMNS)
CUSTOMER_COLUMNS = list(synthetic.CUSTOMER_COLUMNS)
TRANSACTION_COLUMNS = list(synthetic.TRANSACTION_COLUMNS)
SMALL = BuildSettings(max_history=3, train_window_days=14, popularity_window_days=7)


def cid(n: int) -> str:
    """A valid 64-hex customer id."""
    return hashlib.sha256(f"customer-{n}".encode()).hexdigest()


def aid(n: int) -> str:
    """A valid 10-digit article id."""
    return f"0{100000000 + n}"


def article(n: int, **over: Any) -> dict[str, Any]:
    row: dict[str, Any] = {c: "" for c in ARTICLE_COLUMNS}
    row.update(
        article_id=aid(n),
        product_code=str(100000 + n),
        prod_name=f"Item {n}",
        product_group_name=["Garment Upper body", "Shoes"][n % 2],
        colour_group_name=["Black", "White", "Red"][n % 3],
        department_name=f"Dept {n % 4}",
        index_group_name="Ladieswear",
        section_name=f"Section {n % 3}",
        garment_group_name="Jersey Basic",
        detail_desc=f"A fine item number {n}.",
    )
    row.update(over)
    return row


def customer(n: int, **over: Any) -> dict[str, Any]:
    row: dict[str, Any] = dict(
        customer_id=cid(n),
        FN="1.0" if n % 2 else "",
        Active="",
        club_member_status="ACTIVE",
        fashion_news_frequency="NONE",
        age=str(20 + n % 50) + ".0",
        postal_code="abc",
    )
    row.update(over)
    return row


def tx(
    day: dt.date | str, c: int, a: int, price: str = "0.0254", channel: str = "2", **over: Any
) -> dict[str, Any]:
    row = dict(
        t_dat=day if isinstance(day, str) else day.isoformat(),
        customer_id=cid(c),
        article_id=aid(a),
        price=price,
        sales_channel_id=channel,
    )
    row.update(over)
    return row


def write_csv(path: Path, columns: list[str], rows: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
        w.writeheader()
        for row in rows:
            w.writerow({c: row.get(c, "") for c in columns})
    return path


def write_raw(
    raw: Path,
    articles: list[dict[str, Any]],
    customers: list[dict[str, Any]],
    transactions: list[dict[str, Any]],
) -> Path:
    write_csv(raw / "articles.csv", ARTICLE_COLUMNS, articles)
    write_csv(raw / "customers.csv", CUSTOMER_COLUMNS, customers)
    write_csv(raw / "transactions_train.csv", TRANSACTION_COLUMNS, transactions)
    return raw


LAST = dt.date(2020, 9, 22)


def history_rows(n_customers: int = 6, n_articles: int = 8, days: int = 40) -> list[dict[str, Any]]:
    """A deterministic purchase log ending on 2020-09-22: customer c buys on every (c+2)-th day."""
    rows = []
    for d in range(days):
        day = LAST - dt.timedelta(days=days - 1 - d)
        for c in range(n_customers):
            if d % (c + 2) == 0:
                rows.append(
                    tx(
                        day,
                        c,
                        (c + d) % n_articles,
                        price=f"0.0{(c + d) % 9 + 1}",
                        channel=str(1 + (d + c) % 2),
                    )
                )
    return rows


def small_raw(raw: Path) -> Path:
    """Six customers, eight articles, 40 days of purchases: big enough for SMALL's splits."""
    return write_raw(raw, [article(i) for i in range(8)], [customer(i) for i in range(6)], history_rows())


def build(raw: Path, out: Path, settings: BuildSettings = SMALL) -> dict[str, Any]:
    return build_dataset(
        raw, out, load_dc002(CONTRACT), load_dc003(REPO / "contracts" / "dc003.yaml"), settings
    )


def synthetic_raw(raw: Path, seed: int = 7) -> Path:
    from dc003.data.synthetic import generate_hm_layout, scale_preset

    generate_hm_layout(raw, scale_preset("tiny"), seed=seed, oracle=True)
    return raw


def test_written_raw_reads_back(tmp_path: Path) -> None:
    import polars as pl

    raw = small_raw(tmp_path / "raw")
    t = pl.read_csv(raw / "transactions_train.csv", infer_schema=False)
    assert t.columns == TRANSACTION_COLUMNS
    assert t["t_dat"].max() == "2020-09-22" and t["t_dat"].min() == "2020-08-14"
    assert set(t["customer_id"]) <= {cid(i) for i in range(6)}
