"""The synthetic H&M-layout generator: file layout and formats, mess, cold users and articles,
determinism, the oracle, config validation, and that purchases carry a learnable signal."""

from __future__ import annotations

import csv
import itertools
import json
import re
from collections import defaultdict
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from pydantic import ValidationError

from dc003.data.synthetic import (
    ARTICLE_COLUMNS,
    CUSTOMER_COLUMNS,
    SCALES,
    TRANSACTION_COLUMNS,
    SyntheticConfig,
    generate_hm_layout,
    scale_preset,
)
from dc003.data.synthetic_catalogue import build_catalogue
from dc003.data.synthetic_config import calendar
from dc003.data.synthetic_vocab import build_taxonomy
from dc003.errors import Dc003Error

FILES = ("articles.csv", "customers.csv", "transactions_train.csv", "oracle.parquet")
HEX64 = re.compile(r"^[0-9a-f]{64}$")
ARTICLE_ID = re.compile(r"^0\d{9}$")
PRICE = re.compile(r"^0\.\d{1,16}$")
TINY = scale_preset("tiny")


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _header(path: Path) -> list[str]:
    with path.open(encoding="utf-8") as fh:
        return fh.readline().rstrip("\n").split(",")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, object]]:
    out = tmp_path_factory.mktemp("tiny")
    report = generate_hm_layout(out, TINY, seed=7)
    return out, report


@pytest.fixture(scope="module")
def tables(tiny: tuple[Path, dict[str, object]]) -> dict[str, list[dict[str, str]]]:
    out, _ = tiny
    return {name: _read(out / name) for name in FILES[:3]}


def test_writes_the_files_and_nothing_half_written(tiny: tuple[Path, dict[str, object]]) -> None:
    out, _ = tiny
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES)


def test_headers_follow_the_kaggle_layout(tiny: tuple[Path, dict[str, object]]) -> None:
    out, _ = tiny
    assert _header(out / "articles.csv") == list(ARTICLE_COLUMNS)
    assert len(ARTICLE_COLUMNS) == 25
    assert _header(out / "customers.csv") == list(CUSTOMER_COLUMNS)
    assert _header(out / "transactions_train.csv") == list(TRANSACTION_COLUMNS)


def test_article_ids_and_codes(tables: dict[str, list[dict[str, str]]]) -> None:
    articles = tables["articles.csv"]
    assert len(articles) == TINY.n_articles
    ids = [a["article_id"] for a in articles]
    assert all(ARTICLE_ID.match(i) for i in ids)
    assert len(set(ids)) == len(ids) and ids == sorted(ids)
    # 0 + six-digit product code + three-digit variant; the code column is zero-padded like Kaggle's
    assert all(a["article_id"][:7] == a["product_code"] for a in articles)
    assert all(re.match(r"^\d{2}$", a["colour_group_code"]) for a in articles)
    for code, name in [
        ("product_type_no", "product_type_name"),
        ("graphical_appearance_no", "graphical_appearance_name"),
        ("colour_group_code", "colour_group_name"),
        ("perceived_colour_value_id", "perceived_colour_value_name"),
        ("perceived_colour_master_id", "perceived_colour_master_name"),
        ("department_no", "department_name"),
        ("index_code", "index_name"),
        ("index_group_no", "index_group_name"),
        ("section_no", "section_name"),
        ("garment_group_no", "garment_group_name"),
    ]:
        pairs = {(a[code], a[name]) for a in articles}
        assert len(pairs) == len({c for c, _ in pairs}) == len({n for _, n in pairs}), (code, name)


def test_article_hierarchy(tables: dict[str, list[dict[str, str]]]) -> None:
    parents: dict[tuple[str, str], dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for a in tables["articles.csv"]:
        for child, parent in [
            ("department_name", "section_name"),
            ("section_name", "index_name"),
            ("index_name", "index_group_name"),
            ("product_type_name", "product_group_name"),
        ]:
            parents[(child, parent)][a[child]].add(a[parent])
    for link, mapping in parents.items():
        assert all(len(p) == 1 for p in mapping.values()), link


def test_customers_format(tables: dict[str, list[dict[str, str]]]) -> None:
    customers = tables["customers.csv"]
    assert len(customers) == TINY.n_customers
    ids = [c["customer_id"] for c in customers]
    assert all(HEX64.match(i) for i in ids) and len(set(ids)) == len(ids)
    assert {c["FN"] for c in customers} <= {"1.0", ""}
    assert {c["Active"] for c in customers} <= {"1.0", ""}
    assert sum(c["FN"] == "" for c in customers) > len(customers) / 2  # empty on most rows
    assert {c["club_member_status"] for c in customers} <= {"ACTIVE", "PRE-CREATE", "LEFT CLUB", ""}
    assert {c["fashion_news_frequency"] for c in customers} <= {"NONE", "Regularly", "Monthly", "None", ""}
    ages = [c["age"] for c in customers if c["age"]]
    assert all(re.match(r"^\d{2}\.0$", a) and 16 <= float(a) <= 99 for a in ages)
    postal = [c["postal_code"] for c in customers]
    assert all(HEX64.match(p) for p in postal)
    assert len(set(postal)) < len(postal)  # several customers share a postal code


def test_transactions_format(
    tables: dict[str, list[dict[str, str]]], tiny: tuple[Path, dict[str, object]]
) -> None:
    tx = tables["transactions_train.csv"]
    target = TINY.n_transactions
    assert abs(len(tx) - target) <= 0.05 * target
    dates = [t["t_dat"] for t in tx]
    assert dates == sorted(dates)
    assert dates[0] >= TINY.start_date.isoformat() and dates[-1] <= TINY.end_date.isoformat()
    assert all(date.fromisoformat(d) for d in set(dates))
    assert all(HEX64.match(t["customer_id"]) for t in tx)
    assert all(ARTICLE_ID.match(t["article_id"]) for t in tx)
    assert all(PRICE.match(t["price"]) and 0 < float(t["price"]) < 1 for t in tx)
    channels = [t["sales_channel_id"] for t in tx]
    assert set(channels) == {"1", "2"}
    assert 0.55 < channels.count("2") / len(channels) < 0.85
    _, report = tiny
    assert report["rows"] == {
        "articles": TINY.n_articles,
        "customers": TINY.n_customers,
        "transactions": len(tx),
    }


def test_same_day_quantities_are_repeated_rows(tables: dict[str, list[dict[str, str]]]) -> None:
    tx = tables["transactions_train.csv"]
    rows = [tuple(t.values()) for t in tx]
    assert len(set(rows)) < len(rows)
    # copies are adjacent, as in the real file
    assert any(a == b for a, b in itertools.pairwise(rows))


def test_prices_are_per_article_with_small_noise(tables: dict[str, list[dict[str, str]]]) -> None:
    by_article: dict[str, list[float]] = defaultdict(list)
    for t in tables["transactions_train.csv"]:
        by_article[t["article_id"]].append(float(t["price"]))
    spread = [max(p) / min(p) for p in by_article.values() if len(p) >= 5]
    assert spread and np.median(spread) <= 2.0  # markdowns at most halve a shelf price
    assert any(s > 1.0 for s in spread)  # but some do happen


def test_mess_is_present(
    tables: dict[str, list[dict[str, str]]], tiny: tuple[Path, dict[str, object]]
) -> None:
    customers, articles, tx = (
        tables["customers.csv"],
        tables["articles.csv"],
        tables["transactions_train.csv"],
    )
    news = [c["fashion_news_frequency"] for c in customers]
    assert "None" in news and "NONE" in news and "" in news
    assert any(c["age"] == "" for c in customers)
    assert any(c["club_member_status"] == "" for c in customers)
    assert any(a["detail_desc"] == "" for a in articles)
    known_c = {c["customer_id"] for c in customers}
    known_a = {a["article_id"] for a in articles}
    orphan_c = sum(t["customer_id"] not in known_c for t in tx)
    orphan_a = sum(t["article_id"] not in known_a for t in tx)
    assert orphan_c >= 1 and orphan_a >= 1
    assert orphan_c + orphan_a <= max(10, 0.01 * len(tx))
    _, report = tiny
    orphans = report["orphans"]
    assert isinstance(orphans, dict)
    assert (orphans["unknown_customer"], orphans["unknown_article"]) == (orphan_c, orphan_a)


def test_final_week_has_cold_users_and_cold_articles(tables: dict[str, list[dict[str, str]]]) -> None:
    tx = tables["transactions_train.csv"]
    cut = (TINY.end_date - timedelta(days=6)).isoformat()
    before = [t for t in tx if t["t_dat"] < cut]
    final = [t for t in tx if t["t_dat"] >= cut]
    assert final
    old_customers = {t["customer_id"] for t in before}
    old_articles = {t["article_id"] for t in before}
    assert {t["customer_id"] for t in final} - old_customers
    assert {t["article_id"] for t in final} - old_articles


def test_repeat_purchases_on_later_days_exist(tables: dict[str, list[dict[str, str]]]) -> None:
    days: dict[tuple[str, str], set[str]] = defaultdict(set)
    for t in tables["transactions_train.csv"]:
        days[(t["customer_id"], t["article_id"])].add(t["t_dat"])
    assert any(len(d) > 1 for d in days.values())


def test_same_seed_same_bytes_other_seed_other_data(
    tiny: tuple[Path, dict[str, object]], tmp_path: Path
) -> None:
    out, _ = tiny
    generate_hm_layout(tmp_path / "again", TINY, seed=7)
    for name in FILES:
        assert (tmp_path / "again" / name).read_bytes() == (out / name).read_bytes(), name
    generate_hm_layout(tmp_path / "other", TINY, seed=8, oracle=False)
    assert not (tmp_path / "other" / "oracle.parquet").exists()
    for name in FILES[:3]:
        assert (tmp_path / "other" / name).read_bytes() != (out / name).read_bytes(), name


def test_oracle_ranks_final_window_buyers(
    tiny: tuple[Path, dict[str, object]], tables: dict[str, list[dict[str, str]]]
) -> None:
    out, _ = tiny
    oracle = pl.read_parquet(out / "oracle.parquet")
    assert oracle.columns == ["customer_id", "rank", "article_id", "score"]
    cut = (TINY.end_date - timedelta(days=6)).isoformat()
    known_c = {c["customer_id"] for c in tables["customers.csv"]}
    buyers = {t["customer_id"] for t in tables["transactions_train.csv"] if t["t_dat"] >= cut} & known_c
    assert set(oracle["customer_id"].to_list()) == buyers
    known_a = {a["article_id"] for a in tables["articles.csv"]}
    assert set(oracle["article_id"].to_list()) <= known_a
    for group in oracle.partition_by("customer_id"):
        assert group["rank"].to_list() == list(range(1, 101))
        assert group["article_id"].n_unique() == 100
        scores = group["score"].to_numpy()
        assert (np.diff(scores) <= 0).all() and (scores > 0).all() and scores.sum() <= 1 + 1e-9


def test_oracle_options(tmp_path: Path) -> None:
    generate_hm_layout(tmp_path, TINY, seed=3, oracle_days=14, oracle_k=5)
    oracle = pl.read_parquet(tmp_path / "oracle.parquet")
    assert oracle["rank"].max() == 5
    tx = pl.read_csv(tmp_path / "transactions_train.csv", columns=["t_dat", "customer_id"])
    cut = (TINY.end_date - timedelta(days=13)).isoformat()
    customers = set(pl.read_csv(tmp_path / "customers.csv", columns=["customer_id"])["customer_id"].to_list())
    buyers = set(tx.filter(pl.col("t_dat") >= cut)["customer_id"].to_list()) & customers
    assert set(oracle["customer_id"].to_list()) == buyers


BAD_VALUES = [
    ("n_customers", 0), ("n_articles", 5), ("n_transactions", -1), ("repeat_rate", 1.0),
    ("segment_weight", 1.5), ("item_temperature", 0.0), ("missing_age_rate", -0.1), ("satiation", 1.2),
]  # fmt: skip


@pytest.mark.parametrize(("field", "value"), BAD_VALUES)
def test_config_rejects_bad_values(field: str, value: object) -> None:
    fields = {"n_customers": 10, "n_articles": 50, "n_transactions": 100, field: value}
    with pytest.raises(ValidationError):
        SyntheticConfig.model_validate(fields)


def test_config_rules() -> None:
    ok = SyntheticConfig(n_customers=10, n_articles=50, n_transactions=100)
    assert ok.end_date > ok.start_date
    with pytest.raises(ValidationError):
        SyntheticConfig.model_validate(
            {"n_customers": 10, "n_articles": 50, "n_transactions": 100, "colour": 1}
        )
    with pytest.raises(ValidationError):
        SyntheticConfig(n_customers=10, n_articles=50, n_transactions=100, end_date=date(2018, 10, 1))
    with pytest.raises(ValidationError):
        ok.n_customers = 5  # type: ignore[misc]
    with pytest.raises(ValueError, match="unknown scale"):
        scale_preset("huge")  # type: ignore[arg-type]
    assert SCALES["full"].n_transactions == 31_788_324 and SCALES["full"].n_customers == 1_371_980
    assert SCALES["tiny"] == scale_preset("tiny")


def test_generate_rejects_bad_oracle_arguments(tmp_path: Path) -> None:
    with pytest.raises(Dc003Error, match="oracle_days"):
        generate_hm_layout(tmp_path, TINY, seed=0, oracle_days=0)
    with pytest.raises(Dc003Error, match="oracle_k"):
        generate_hm_layout(tmp_path, TINY, seed=0, oracle_k=0)
    assert not list(tmp_path.iterdir())


def test_full_size_catalogue_has_the_real_cardinalities() -> None:
    tax = build_taxonomy()
    cfg = SyntheticConfig(n_customers=10, n_articles=105_542, n_transactions=10)
    cat = build_catalogue(cfg, calendar(cfg), tax, np.random.default_rng(0))
    section = tax.section_of_department[cat.department]
    index = tax.index_of_section[section]
    seen = {
        "product_group": np.unique(tax.group_of_type[cat.product_type]).size,
        "colour_group": np.unique(cat.colour).size,
        "department": np.unique(cat.department).size,
        "index": np.unique(index).size,
        "index_group": np.unique(tax.index_group_of_index[index]).size,
        "section": np.unique(section).size,
        "garment_group": np.unique(tax.topic_garment_group[tax.topic_of_department[cat.department]]).size,
        "graphical_appearance": np.unique(cat.graphical).size,
        "perceived_colour_master": np.unique(tax.master_of_colour[cat.colour]).size,
        "perceived_colour_value": np.unique(cat.colour_value).size,
    }
    assert seen == {
        "product_group": 19, "colour_group": 50, "department": 250, "index": 10, "index_group": 5,
        "section": 56, "garment_group": 21, "graphical_appearance": 30, "perceived_colour_master": 20,
        "perceived_colour_value": 8,
    }  # fmt: skip
    assert 120 <= np.unique(cat.product_type).size <= 140
    assert 300 <= sum(d is None for d in cat.detail_desc) <= 600  # ~0.4 % missing


def test_purchases_follow_a_learnable_taste(tmp_path: Path) -> None:
    """On the small scale the oracle's top 100 catches far more of the final week than the 100
    most popular articles of the week before: purchases are personal, not global."""
    generate_hm_layout(tmp_path, scale_preset("small"), seed=1)
    tx = pl.read_csv(tmp_path / "transactions_train.csv", schema_overrides={"article_id": pl.String})
    end = scale_preset("small").end_date
    cut = (end - timedelta(days=6)).isoformat()
    prev = (end - timedelta(days=13)).isoformat()
    final = tx.filter(pl.col("t_dat") >= cut).unique(["customer_id", "article_id"])
    popular = (
        tx.filter((pl.col("t_dat") >= prev) & (pl.col("t_dat") < cut))["article_id"]
        .value_counts(sort=True)
        .head(100)
    )
    oracle = pl.read_parquet(tmp_path / "oracle.parquet").select("customer_id", "article_id")
    hit_oracle = final.join(oracle, on=["customer_id", "article_id"], how="semi").height / final.height
    hit_popular = (
        final.filter(pl.col("article_id").is_in(popular["article_id"].implode())).height / final.height
    )
    assert hit_oracle > 0.4
    assert hit_oracle > 3 * hit_popular


def test_edge_config_without_back_catalogue(tmp_path: Path) -> None:
    cfg = SyntheticConfig(n_customers=40, n_articles=30, n_transactions=400, back_catalogue_share=0.0)
    report = generate_hm_layout(tmp_path, cfg, seed=2, oracle_k=500)
    tx = pl.read_csv(tmp_path / "transactions_train.csv")
    assert tx.height == report["rows"]["transactions"]  # type: ignore[index]
    assert tx["price"].is_between(0, 1, closed="none").all()
    oracle = pl.read_parquet(tmp_path / "oracle.parquet")
    assert oracle["rank"].max() <= 30  # never more than the articles on sale


def test_a_failed_run_leaves_the_previous_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    generate_hm_layout(tmp_path, TINY, seed=4)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("killed while ranking")

    monkeypatch.setattr("dc003.data.synthetic.oracle_top_k", broken)
    with pytest.raises(RuntimeError, match="killed"):
        generate_hm_layout(tmp_path, TINY, seed=5)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # no temp files either


def test_taste_splits_into_a_feature_part_and_an_individual_part() -> None:
    """The customer taste is the segment part (a function of the observable features) plus the individual
    part; scripts/synthetic_ceiling.py relies on replaying the stream into the two."""
    from dc003.data.synthetic import _rng
    from dc003.data.synthetic_config import SCALES
    from dc003.data.synthetic_customers import build_customers
    from dc003.data.synthetic_taste import item_vectors, user_vector_parts, user_vectors

    cfg = SCALES["tiny"]
    cal, tax = calendar(cfg), build_taxonomy()
    cat = build_catalogue(cfg, cal, tax, _rng(7, "catalogue"))
    cust = build_customers(cfg, cal, _rng(7, "customers"))
    whole_rng, parts_rng = _rng(7, "taste"), _rng(7, "taste")
    item_vectors(cfg, tax, cat, whole_rng)
    item_vectors(cfg, tax, cat, parts_rng)
    whole = user_vectors(cfg, cust, whole_rng)
    segment, individual = user_vector_parts(cfg, cust, parts_rng)
    np.testing.assert_array_equal(whole, (segment + individual).astype(np.float32))
    # shares of variance as configured, and the segment part depends on the features alone
    share = float(np.mean(np.sum(segment**2, axis=1)))
    assert share == pytest.approx(cfg.segment_weight)
    assert float(np.mean(np.sum(individual**2, axis=1))) == pytest.approx(1 - cfg.segment_weight)
    news = np.where(cust.news >= 3, 0, cust.news)
    key = np.stack([cust.age, cust.club, news, cust.online.astype(np.int64)], axis=1)
    _, first, inverse = np.unique(key, axis=0, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    np.testing.assert_array_equal(segment, segment[first][inverse])
    twins = np.flatnonzero(inverse == np.flatnonzero(np.bincount(inverse) >= 2)[0])[:2]
    assert not np.allclose(whole[twins[0]], whole[twins[1]])  # same features, different tastes


def test_raw_stage_output_is_identical_on_a_rerun(tmp_path: Path) -> None:
    """No timing in the raw stage's outputs: re-running it on the same params must not change a byte, or
    DVC would re-run everything downstream of identical data."""
    from dc003.contracts import load_dc002
    from dc003.data.raw import make_raw
    from dc003.params.data import DataParams

    params = DataParams(source="synthetic", scale="tiny", kaggle_dir="unused")
    first = make_raw(tmp_path / "a", params, seed=3, contract=load_dc002())
    make_raw(tmp_path / "b", params, seed=3, contract=load_dc002())
    assert first["seconds"]["total"] > 0  # reported to the caller ...
    stored = json.loads((tmp_path / "a" / "source.json").read_text())
    assert "seconds" not in stored["report"]  # ... not stored
    for name in sorted(p.name for p in (tmp_path / "a").iterdir()):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
