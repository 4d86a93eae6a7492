"""The DC-002 build: layout, dense stable indices, same-day merging, time splits, features as of each
cutoff, history slices, cold sets, encodings, manifest, atomic output."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from dc003.data.history import history_pointers
from dc003.errors import Dc003Error
from dc003.io import read_json, sha256_file

from .conftest import REPO
from .test_dataset_support import (
    LAST,
    article,
    build,
    cid,
    customer,
    history_rows,
    small_raw,
    synthetic_raw,
    tx,
    write_raw,
)

EPOCH = dt.date(1970, 1, 1)


def _day(d: dt.date) -> int:
    return (d - EPOCH).days


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:  # type: ignore[type-arg]
    root = tmp_path_factory.mktemp("tiny")
    raw = synthetic_raw(root / "raw")
    out = root / "dataset"
    from dc003.data.build import BuildSettings

    manifest = build(raw, out, BuildSettings(max_history=50, train_window_days=84, popularity_window_days=28))
    return raw, out, manifest


def test_layout_indices_and_manifest(tiny: tuple[Path, Path, dict]) -> None:  # type: ignore[type-arg]
    _, out, manifest = tiny
    items = pl.read_parquet(out / "items.parquet")
    assert items["item_idx"].to_list() == list(range(items.height))
    assert items["article_id"].is_sorted() and items["article_id"].n_unique() == items.height
    assert items["detail_desc"].null_count() == 0 and items["prod_name"].null_count() == 0
    for split in ("train", "val", "test"):
        users = pl.read_parquet(out / f"users_{split}.parquet")
        assert users["user_idx"].to_list() == list(range(users.height))
        assert users["customer_id"].is_sorted()
    inter = pl.read_parquet(out / "interactions.parquet")
    keys = inter.select((pl.col("user_idx").cast(pl.Int64) * 100000 + pl.col("day")).alias("k"))["k"]
    assert keys.is_sorted()
    # memory does not grow with examples x history: two int64 pointers, no list column
    assert inter.schema["hist_start"] == pl.Int64 and inter.schema["hist_end"] == pl.Int64
    assert not any(isinstance(t, pl.List) for t in inter.schema.values())
    # same-day repeats are merged, never dropped: quantities add up to the kept transactions
    kept = manifest["raw"]["transactions"]["rows_kept"]
    assert inter["quantity"].sum() == kept
    assert manifest["raw"]["transactions"]["repaired_by_rule"]["same_day_repeat"] == kept - inter.height
    # the manifest: counts, hashes, contract version
    assert manifest["contract"]["id"] == "DC-002" and manifest["contract"]["version"]
    for name, digest in manifest["hashes"].items():
        assert sha256_file(out / name) == digest
    assert manifest["counts"]["interactions.parquet"] == inter.height
    assert read_json(out / "manifest.json")["counts"] == manifest["counts"]


def test_history_slices_are_point_in_time(tiny: tuple[Path, Path, dict]) -> None:  # type: ignore[type-arg]
    _, out, _ = tiny
    inter = pl.read_parquet(out / "interactions.parquet")
    user, day = inter["user_idx"].to_numpy(), inter["day"].to_numpy()
    start, end = inter["hist_start"].to_numpy(), inter["hist_end"].to_numpy()
    rng = np.random.default_rng(0)
    for i in rng.choice(inter.height, 300, replace=False):
        s, e = start[i], end[i]
        assert 0 <= e - s <= 50
        assert (user[s:e] == user[i]).all() and (day[s:e] < day[i]).all()
        earlier = np.flatnonzero((user == user[i]) & (day < day[i]))
        assert e - s == min(50, earlier.size)  # the last <= 50, none missing
        if earlier.size:
            assert e - 1 == earlier[-1]


def test_history_pointers_by_hand() -> None:
    user = np.array([0, 0, 0, 0, 1, 1, 2])
    day = np.array([5, 5, 7, 9, 1, 3, 4])
    start, end = history_pointers(user, day, max_history=2)
    assert end.tolist() == [0, 0, 2, 3, 4, 5, 6]
    assert start.tolist() == [0, 0, 0, 1, 4, 4, 6]


def test_splits_and_features_as_of_cutoff(tmp_path: Path) -> None:
    raw = small_raw(tmp_path / "raw")
    out = tmp_path / "dataset"
    build(raw, out)
    splits = read_json(out / "splits.json")
    assert splits["splits"]["test"]["cutoff_date"] == "2020-09-16" and splits["splits"]["test"]["days"] == 7
    assert splits["splits"]["val"]["cutoff_date"] == "2020-09-09"
    assert (
        splits["splits"]["train"]["cutoff_date"] == "2020-08-26" and splits["splits"]["train"]["days"] == 14
    )
    inter = pl.read_parquet(out / "interactions.parquet")
    expect = (
        pl.when(pl.col("day") >= _day(dt.date(2020, 9, 16))).then(pl.lit("test"))
        .when(pl.col("day") >= _day(dt.date(2020, 9, 9))).then(pl.lit("val"))
        .when(pl.col("day") >= _day(dt.date(2020, 8, 26))).then(pl.lit("train"))
        .otherwise(pl.lit("history"))
    )  # fmt: skip
    assert inter.select((pl.col("split") == expect).all()).item()
    rows = history_rows()
    users = pl.read_parquet(out / "users_val.parquet")
    cutoff = dt.date(2020, 9, 9).isoformat()
    for u in users.iter_rows(named=True):
        mine = [r for r in rows if r["customer_id"] == u["customer_id"] and r["t_dat"] < cutoff]
        assert u["total_purchases"] == len(mine)
        if mine:
            first = min(r["t_dat"] for r in mine)
            assert u["lifetime_days"] == (dt.date(2020, 9, 9) - dt.date.fromisoformat(first)).days
            days = {r["t_dat"] for r in mine}
            assert u["avg_basket_size"] == pytest.approx(len(mine) / len(days))
            ch = [r["sales_channel_id"] for r in mine]
            ones, twos = ch.count("1"), ch.count("2")
            assert u["preferred_channel"] == (None if ones == twos else ("1" if ones > twos else "2"))
    items = pl.read_parquet(out / "items_test.parquet")
    assert (
        items["price_normalized"].is_between(0, 1).all() and items["popularity_score"].is_between(0, 1).all()
    )
    window = [r for r in rows if "2020-09-09" <= r["t_dat"] < "2020-09-16"]
    for it in items.iter_rows(named=True):
        aid = pl.read_parquet(out / "items.parquet")["article_id"][it["item_idx"]]
        assert it["window_purchases"] == sum(r["article_id"] == aid for r in window)
    assert items["popularity_score"].max() == 1.0


def test_future_purchases_do_not_change_past_features(tmp_path: Path) -> None:
    a = small_raw(tmp_path / "a")
    b = write_raw(
        tmp_path / "b",
        [article(i) for i in range(8)],
        [customer(i) for i in range(6)],
        [*history_rows(), *(tx(LAST, 0, 3, price="0.9") for _ in range(5))],  # more on the last day only
    )
    build(a, tmp_path / "da")
    build(b, tmp_path / "db")
    for name in ("users_test.parquet", "items_test.parquet", "users_val.parquet", "items_val.parquet"):
        assert pl.read_parquet(tmp_path / "da" / name).equals(pl.read_parquet(tmp_path / "db" / name)), name


def test_cold_sets(tmp_path: Path) -> None:
    rows = [*history_rows(n_customers=4), tx("2020-09-20", 5, 8), tx("2020-09-10", 4, 6)]
    raw = write_raw(tmp_path / "raw", [article(i) for i in range(9)], [customer(i) for i in range(6)], rows)
    build(raw, tmp_path / "ds")
    users = pl.read_parquet(tmp_path / "ds" / "users_test.parquet")
    items = pl.read_parquet(tmp_path / "ds" / "items.parquet")
    cold_u = pl.read_parquet(tmp_path / "ds" / "cold_users.parquet")
    cold_i = pl.read_parquet(tmp_path / "ds" / "cold_items.parquet")
    uidx = {c: i for i, c in enumerate(users["customer_id"])}
    iidx = {a: i for i, a in enumerate(items["article_id"])}
    assert sorted(cold_u.filter(pl.col("split") == "test")["user_idx"]) == [uidx[cid(5)]]
    assert sorted(cold_u.filter(pl.col("split") == "val")["user_idx"]) == [uidx[cid(4)]]
    assert cold_i.filter(pl.col("split") == "test")["item_idx"].to_list() == [iidx[article(8)["article_id"]]]
    test_items = pl.read_parquet(tmp_path / "ds" / "items_test.parquet")
    assert (
        test_items["cold"][iidx[article(8)["article_id"]]]
        and not test_items["cold"][iidx[article(6)["article_id"]]]
    )


def test_top_k_encoding_reports_overflow(tmp_path: Path) -> None:
    # 40 departments against DC-003's vocab of 30: the 29 largest are known, 11 go to index 0
    arts = [article(i, department_name=f"D{i % 40:02d}") for i in range(200)]
    arts += [article(200 + i, department_name=f"D{i:02d}") for i in range(29)]  # D00..D28 one more each
    raw = write_raw(tmp_path / "raw", arts, [customer(i) for i in range(6)], history_rows())
    build(raw, tmp_path / "ds")
    vocab = read_json(tmp_path / "ds" / "vocab.json")["department_name"]
    assert vocab["policy"] == "top_k_plus_unknown" and vocab["vocab_size"] == 30
    assert vocab["values"][0] is None and vocab["values"][1:] == [f"D{i:02d}" for i in range(29)]
    assert vocab["distinct_values"] == 40 and vocab["overflow_values"] == 11
    items = pl.read_parquet(tmp_path / "ds" / "items.parquet")
    idx = dict(zip(items["department_name"], items["department_name_idx"], strict=True))
    assert idx["D05"] == 6 and idx["D39"] == 0
    assert items["department_name_idx"].max() <= 29
    club = read_json(tmp_path / "ds" / "vocab.json")["club_member_status"]
    assert club["policy"] == "declared_order" and club["values"] == [
        None,
        "ACTIVE",
        "PRE-CREATE",
        "LEFT CLUB",
    ]


def test_failed_build_leaves_previous_output(tmp_path: Path) -> None:
    raw = small_raw(tmp_path / "raw")
    out = tmp_path / "dataset"
    build(raw, out)
    before = {p.name: sha256_file(p) for p in out.iterdir()}
    pl.read_csv(raw / "customers.csv", infer_schema=False).drop("age").write_csv(raw / "customers.csv")
    with pytest.raises(Dc003Error, match="age: required column is missing"):
        build(raw, out)
    assert {p.name: sha256_file(p) for p in out.iterdir()} == before
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".dataset")]


def test_splits_need_enough_days(tmp_path: Path) -> None:
    rows = [r for r in history_rows() if r["t_dat"] >= "2020-09-01"]
    raw = write_raw(tmp_path / "raw", [article(i) for i in range(8)], [customer(i) for i in range(6)], rows)
    with pytest.raises(Dc003Error, match=r"the data spans 22 days .* but the splits need 35"):
        build(raw, tmp_path / "ds")


def test_oracle_is_mapped_to_indices(tiny: tuple[Path, Path, dict]) -> None:  # type: ignore[type-arg]
    raw, out, manifest = tiny
    oracle = pl.read_parquet(out / "oracle.parquet")
    raw_oracle = pl.read_parquet(raw / "oracle.parquet")
    assert manifest["oracle"]["rows"] == raw_oracle.height
    assert manifest["oracle"]["mapped"] + manifest["oracle"]["unmapped"] == raw_oracle.height
    assert (
        oracle.columns == ["user_idx", "item_idx", "rank", "score"]
        and oracle.height == manifest["oracle"]["mapped"]
    )
    users = pl.read_parquet(out / "users_test.parquet")
    first = raw_oracle.row(0, named=True)
    u = users["customer_id"].to_list().index(first["customer_id"])
    assert u in oracle.filter(pl.col("rank") == first["rank"])["user_idx"].to_list()


def _stage_dir(tmp_path: Path) -> Path:
    """A directory to run a stage in: the contracts and params.yaml, as in the repository."""
    work = tmp_path / "work"
    (work / "contracts").mkdir(parents=True)
    for f in ("contracts/dc002.yaml", "contracts/dc003.yaml", "params.yaml"):
        shutil.copyfile(REPO / f, work / f)
    return work


def test_stage_error_is_one_line_without_traceback(tmp_path: Path) -> None:
    work = _stage_dir(tmp_path)
    raw = small_raw(work / "raw")
    pl.read_csv(raw / "customers.csv", infer_schema=False).drop("age").write_csv(raw / "customers.csv")
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'src'}"}
    res = subprocess.run(
        [sys.executable, "-m", "pipeline.dataset", "--raw", "raw", "--out", "dataset"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
    )
    assert res.returncode == 1
    assert res.stderr.strip().splitlines() == [
        "error: stage dataset: raw/customers.csv: age: required column is missing "
        "(file has: customer_id, FN, Active, club_member_status, fashion_news_frequency, postal_code)"
    ]
    assert not (work / "dataset").exists()


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_numeric_article_ids_build_the_same_dataset(tmp_path: Path, fmt: str) -> None:
    """article_id read as a number (pandas' int64, written back as 9 digits, or kept as int64 in Parquet)
    in both files that hold it: the same dataset as from the 10-digit ids, each padding counted."""
    a = small_raw(tmp_path / "a")
    b = tmp_path / "b"
    b.mkdir()
    shutil.copyfile(a / "customers.csv", b / "customers.csv")
    for name in ("articles", "transactions_train"):
        df = pl.read_csv(a / f"{name}.csv", infer_schema=False, schema_overrides={"article_id": pl.Int64})
        assert df["article_id"].max() < 10**9  # every id lost its leading zero
        if fmt == "csv":
            df.write_csv(b / f"{name}.csv")
        else:
            df.write_parquet(b / f"{name}.parquet")
    ma, mb = build(a, tmp_path / "da"), build(b, tmp_path / "db")
    for f in sorted(ma["counts"]):
        x, y = pl.read_parquet(tmp_path / "da" / f), pl.read_parquet(tmp_path / "db" / f)
        assert x.drop("file", strict=False).equals(y.drop("file", strict=False)), f
    assert {f: h for f, h in ma["hashes"].items() if f != "quarantine.parquet"} == {
        f: h for f, h in mb["hashes"].items() if f != "quarantine.parquet"
    }
    n_articles = pl.read_csv(a / "articles.csv").height
    n_tx = pl.read_csv(a / "transactions_train.csv").height
    assert mb["raw"]["articles"]["repaired_by_rule"]["padded_article_id"] == n_articles
    assert mb["raw"]["transactions"]["repaired_by_rule"]["padded_article_ref"] == n_tx
    assert ma["raw"]["transactions"]["repaired_by_rule"]["padded_article_ref"] == 0
    assert mb["raw"]["transactions"]["rejected"] == ma["raw"]["transactions"]["rejected"] == 0


def test_stage_lists_extra_columns_and_refuses_a_cut_file(tmp_path: Path) -> None:
    work = _stage_dir(tmp_path)
    raw = synthetic_raw(work / "raw")
    customers = pl.read_csv(raw / "customers.csv", infer_schema=False)
    customers.with_columns(pl.lit("x").alias("loyalty_tier"), pl.lit("y").alias("store")).write_csv(
        raw / "customers.csv"
    )
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'src'}"}
    cmd = [sys.executable, "-m", "pipeline.dataset", "--raw", "raw", "--out", "dataset"]
    ok = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert "extra columns ignored: raw/customers.csv: loyalty_tier, store;" in ok.stdout
    manifest = read_json(work / "dataset" / "manifest.json")
    assert manifest["raw"]["customers"]["extra_columns"] == ["loyalty_tier", "store"]
    assert manifest["raw"]["articles"]["extra_columns"] == []
    before = {p.name: sha256_file(p) for p in (work / "dataset").iterdir()}
    data = (raw / "transactions_train.csv").read_bytes()
    cut = data[: data.rindex(b",") - 3]  # the last row stops inside its price
    (raw / "transactions_train.csv").write_bytes(cut)
    lines = cut.count(b"\n") + 1
    bad = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True)
    assert bad.returncode == 1
    assert bad.stderr.strip().splitlines() == [
        f"error: stage dataset: raw/transactions_train.csv: sales_channel_id: line {lines}: truncated_row: "
        "the file ends mid-row (no line break after its last line, which stops after 4 of 5 fields); "
        "fetch the file again"
    ]
    assert {p.name: sha256_file(p) for p in (work / "dataset").iterdir()} == before
