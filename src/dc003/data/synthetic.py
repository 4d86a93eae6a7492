"""Synthetic data in the Kaggle "H&M Personalized Fashion Recommendations" layout: the embedded
default dataset of the pipeline. ``generate_hm_layout`` writes articles.csv, customers.csv,
transactions_train.csv (and optionally oracle.parquet) whose purchases follow a hidden, learnable
preference model; see :class:`SyntheticConfig` for the knobs and the helper modules for each part."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import polars as pl

from dc003.data.synthetic_catalogue import PRICE_SCALE, Catalogue, build_catalogue
from dc003.data.synthetic_config import SCALES, Calendar, Scale, SyntheticConfig, calendar, scale_preset
from dc003.data.synthetic_customers import CLUB, NEWS, Customers, build_customers, random_hex
from dc003.data.synthetic_oracle import oracle_top_k
from dc003.data.synthetic_sampling import Rows, quantities, simulate
from dc003.data.synthetic_taste import build_taste
from dc003.data.synthetic_vocab import Taxonomy, build_taxonomy
from dc003.errors import Dc003Error, located
from dc003.io import atomic_path

__all__ = [
    "ARTICLE_COLUMNS",
    "CUSTOMER_COLUMNS",
    "SCALES",
    "TRANSACTION_COLUMNS",
    "Scale",
    "SyntheticConfig",
    "generate_hm_layout",
    "scale_preset",
]

ARTICLE_COLUMNS = (
    "article_id", "product_code", "prod_name", "product_type_no", "product_type_name", "product_group_name",
    "graphical_appearance_no", "graphical_appearance_name", "colour_group_code", "colour_group_name",
    "perceived_colour_value_id", "perceived_colour_value_name", "perceived_colour_master_id",
    "perceived_colour_master_name", "department_no", "department_name", "index_code", "index_name",
    "index_group_no", "index_group_name", "section_no", "section_name", "garment_group_no",
    "garment_group_name", "detail_desc",
)  # fmt: skip
CUSTOMER_COLUMNS = (
    "customer_id",
    "FN",
    "Active",
    "club_member_status",
    "fashion_news_frequency",
    "age",
    "postal_code",
)
TRANSACTION_COLUMNS = ("t_dat", "customer_id", "article_id", "price", "sales_channel_id")
_WRITE_ROWS = 1 << 21  # transactions written per chunk

# independent random streams, so e.g. changing n_transactions leaves the catalogue unchanged
_STREAMS = {"catalogue": 1, "customers": 2, "taste": 3, "purchases": 4, "orphans": 5, "quantities": 6}


def _rng(seed: int, stream: str) -> np.random.Generator:
    return np.random.default_rng([seed, _STREAMS[stream]])


def _hex_series(hex_rows: np.ndarray) -> pl.Series:
    """(n, w) ASCII bytes -> a polars string column without a Python loop."""
    n, width = hex_rows.shape
    fixed = np.ascontiguousarray(hex_rows).view(f"S{width}").reshape(n)
    return pl.Series(fixed).cast(pl.String)


def _articles_frame(cat: Catalogue, tax: Taxonomy) -> pl.DataFrame:
    dept = cat.department
    section = tax.section_of_department[dept]
    index = tax.index_of_section[section]
    group = tax.index_group_of_index[index]
    gg = tax.topic_garment_group[tax.topic_of_department[dept]]
    master = tax.master_of_colour[cat.colour]

    def names(vocab: tuple[str, ...], codes: np.ndarray) -> pl.Series:
        return pl.Series(vocab).gather(pl.Series(codes.astype(np.int64)))

    cols: dict[str, object] = {
        "article_id": cat.article_id,
        "product_code": [f"{c:07d}" for c in cat.product_code.tolist()],
        "prod_name": cat.prod_name,
        "product_type_no": tax.product_type_nos[cat.product_type],
        "product_type_name": names(tax.product_type_names, cat.product_type),
        "product_group_name": names(tax.product_group_names, tax.group_of_type[cat.product_type]),
        "graphical_appearance_no": tax.graphical_nos[cat.graphical],
        "graphical_appearance_name": names(tax.graphical_names, cat.graphical),
        "colour_group_code": [f"{c:02d}" for c in tax.colour_codes[cat.colour].tolist()],
        "colour_group_name": names(tax.colour_names, cat.colour),
        "perceived_colour_value_id": tax.colour_value_ids[cat.colour_value],
        "perceived_colour_value_name": names(tax.colour_value_names, cat.colour_value),
        "perceived_colour_master_id": tax.colour_master_ids[master],
        "perceived_colour_master_name": names(tax.colour_master_names, master),
        "department_no": tax.department_nos[dept],
        "department_name": names(tax.department_names, dept),
        "index_code": names(tax.index_codes, index),
        "index_name": names(tax.index_names, index),
        "index_group_no": group.astype(np.int64) + 1,
        "index_group_name": names(tax.index_group_names, group),
        "section_no": tax.section_nos[section],
        "section_name": names(tax.section_names, section),
        "garment_group_no": tax.garment_group_nos[gg],
        "garment_group_name": names(tax.garment_group_names, gg),
        "detail_desc": pl.Series(cat.detail_desc, dtype=pl.String),
    }
    return pl.DataFrame({k: cols[k] for k in ARTICLE_COLUMNS})


def _customers_frame(cust: Customers) -> pl.DataFrame:
    def flag(x: np.ndarray) -> pl.Series:
        return pl.Series(np.where(x, 1.0, np.nan)).fill_nan(None)

    def words(vocab: tuple[str, ...], codes: np.ndarray) -> pl.Series:
        s = pl.Series(vocab).gather(pl.Series(codes.astype(np.int64)))
        return s.replace("", None)  # the real file's empty fields

    age = np.where(cust.age_missing, np.nan, cust.age.astype(np.float64))
    return pl.DataFrame(
        {
            "customer_id": _hex_series(cust.hex_ids),
            "FN": flag(cust.fn),
            "Active": flag(cust.active),
            "club_member_status": words(CLUB, cust.club),
            "fashion_news_frequency": words(NEWS, cust.news),
            "age": pl.Series(age).fill_nan(None),
            "postal_code": _hex_series(cust.postal_hex).gather(pl.Series(cust.postal)),
        }
    )


def _price_strings(cents: np.ndarray) -> tuple[pl.Series, np.ndarray]:
    """Prices as the Kaggle file prints them: units / 590, cut (not rounded) after 16 decimals,
    trailing zeros dropped (0.0209152542372881, 0.05). Exact integer arithmetic, formatted once
    per distinct value, then looked up."""
    values, inverse = np.unique(cents, return_inverse=True)
    scale = round(100 * PRICE_SCALE)
    text = [f"0.{v * 10**16 // scale:016d}".rstrip("0") for v in values.tolist()]
    return pl.Series(text, dtype=pl.String), inverse.astype(np.int32)


def _write_transactions(
    path: Path, cal: Calendar, day: np.ndarray, cust_ids: pl.Series, customer: np.ndarray,
    art_ids: pl.Series, article: np.ndarray, cents: np.ndarray, channel: np.ndarray,
) -> None:  # fmt: skip
    dates = pl.Series(cal.dates(), dtype=pl.String)
    prices, price_idx = _price_strings(cents)
    with open(path, "wb") as fh:
        for r0 in range(0, day.size, _WRITE_ROWS):
            sl = slice(r0, r0 + _WRITE_ROWS)
            chunk = pl.DataFrame(
                {
                    "t_dat": dates.gather(pl.Series(day[sl])),
                    "customer_id": cust_ids.gather(pl.Series(customer[sl])),
                    "article_id": art_ids.gather(pl.Series(article[sl])),
                    "price": prices.gather(pl.Series(price_idx[sl])),
                    "sales_channel_id": pl.Series(channel[sl]),
                }
            )
            chunk.write_csv(fh, include_header=r0 == 0)


def _write_oracle(
    path: Path, users: np.ndarray, arts: np.ndarray, scores: np.ndarray, cust: Customers, art_ids: pl.Series
) -> None:
    k = arts.shape[1]
    frame = pl.DataFrame(
        {
            "customer_id": _hex_series(cust.hex_ids[np.repeat(users, k)]),
            "rank": pl.Series(np.tile(np.arange(1, k + 1, dtype=np.int16), users.size)),
            "article_id": art_ids.gather(pl.Series(arts.ravel())),
            "score": pl.Series(scores.ravel()),
        }
    )
    frame.write_parquet(path, compression="zstd")


def _add_orphans(
    cfg: SyntheticConfig, rows: Rows, n_customers: int, n_articles: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Point a few rows at customers / articles that the other files do not contain."""
    n = rows.customer.size
    n_orphan = min(n, max(2, round(cfg.orphan_rate * n)))
    picks = rng.choice(n, n_orphan, replace=False)
    n_cust = max(1, n_orphan // 2)
    customer, article = rows.customer.copy(), rows.article.copy()
    customer[picks[:n_cust]] = n_customers + np.arange(n_cust)
    article[picks[n_cust:]] = n_articles + np.arange(n_orphan - n_cust)
    return customer, article, n_cust, n_orphan - n_cust


def _file_names(oracle: bool) -> tuple[str, ...]:
    names = ("articles.csv", "customers.csv", "transactions_train.csv")
    return (*names, "oracle.parquet") if oracle else names


def _check_args(cal: Calendar, oracle_days: int, oracle_k: int) -> None:
    if not 1 <= oracle_days < cal.n_days:
        rule = f"must be in 1..{cal.n_days - 1} (got {oracle_days})"
        raise Dc003Error(located("generate_hm_layout", "oracle_days", rule))
    if oracle_k < 1:
        raise Dc003Error(located("generate_hm_layout", "oracle_k", f"must be >= 1 (got {oracle_k})"))


def generate_hm_layout(
    out_dir: Path,
    config: SyntheticConfig,
    *,
    seed: int,
    oracle: bool = True,
    oracle_days: int = 7,
    oracle_k: int = 100,
) -> dict[str, object]:
    """Write the three Kaggle-layout CSVs (and oracle.parquet) into ``out_dir``, each atomically.

    Same config and seed give byte-identical files. Returns a small JSON-ready report: row counts,
    orphan and mess counts, cold users / articles of the final week, and the seconds taken.
    """
    with _single_threaded_blas():
        return _generate(Path(out_dir), config, seed, oracle, oracle_days, oracle_k)


@contextlib.contextmanager
def _single_threaded_blas() -> Iterator[None]:
    """The generator's matrix products are small and skinny: one BLAS thread is as fast (much
    faster on a busy machine) and keeps float results independent of the core count."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl ships with the pinned stack
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def _generate(
    out: Path, cfg: SyntheticConfig, seed: int, oracle: bool, oracle_days: int, oracle_k: int
) -> dict[str, object]:
    t_start = time.perf_counter()
    cal = calendar(cfg)
    _check_args(cal, oracle_days, oracle_k)
    tax = build_taxonomy()
    cat = build_catalogue(cfg, cal, tax, _rng(seed, "catalogue"))
    cust = build_customers(cfg, cal, _rng(seed, "customers"))
    taste = build_taste(cfg, cal, tax, cat, cust, _rng(seed, "taste"))
    rows = simulate(cfg, cal, cust, cat, taste, _rng(seed, "purchases"))
    t_sim = time.perf_counter()

    orng = _rng(seed, "orphans")
    customer, article, n_orphan_cust, n_orphan_art = _add_orphans(cfg, rows, cust.n, cat.n, orng)
    ghost_codes = orng.choice(np.arange(960_000, 1_000_000), n_orphan_art, replace=False)
    cust_ids = _hex_series(np.concatenate([cust.hex_ids, random_hex(n_orphan_cust, orng)]))
    art_ids = pl.Series(cat.article_id + [f"0{c:06d}001" for c in ghost_codes.tolist()], dtype=pl.String)

    copies = quantities(cfg, customer.size, _rng(seed, "quantities"))
    # rows are in (customer, day) order; a stable sort by day gives the file's t_dat order with a
    # customer's same-day rows (and their quantity copies) adjacent
    by_day = np.argsort(rows.day, kind="stable")
    order = np.repeat(by_day, copies[by_day])
    n_oracle_users = 0
    # every file goes to a temporary name; all are renamed into place only once all are written
    with contextlib.ExitStack() as stack:
        tmp = {name: stack.enter_context(atomic_path(out / name)) for name in _file_names(oracle)}
        _articles_frame(cat, tax).write_csv(tmp["articles.csv"])
        _customers_frame(cust).write_csv(tmp["customers.csv"])
        _write_transactions(
            tmp["transactions_train.csv"], cal, rows.day[order], cust_ids, customer[order], art_ids,
            article[order], rows.cents[order], rows.channel[order],
        )  # fmt: skip
        if oracle:
            users, arts, scores = oracle_top_k(
                cfg, cal, cat, taste, rows, oracle_days=oracle_days, oracle_k=oracle_k
            )
            _write_oracle(tmp["oracle.parquet"], users, arts, scores, cust, art_ids)
            n_oracle_users = int(users.size)
    return _report(cfg, cal, cust, cat, rows, order, customer, article, n_orphan_cust, n_orphan_art,
                   n_oracle_users, oracle_days, t_start, t_sim)  # fmt: skip


def _report(
    cfg: SyntheticConfig, cal: Calendar, cust: Customers, cat: Catalogue, rows: Rows, order: np.ndarray,
    customer: np.ndarray, article: np.ndarray, n_orphan_cust: int, n_orphan_art: int, n_oracle_users: int,
    oracle_days: int, t_start: float, t_sim: float,
) -> dict[str, object]:  # fmt: skip
    t0 = cal.n_days - oracle_days
    final = rows.day >= t0
    seen_before = np.zeros(cat.n, dtype=bool)
    seen_before[rows.article[~final]] = True
    buyers_before = np.zeros(cust.n, dtype=bool)
    buyers_before[rows.customer[~final]] = True
    orphan_rows = (customer[order] >= cust.n) | (article[order] >= cat.n)
    return {
        "rows": {"articles": cat.n, "customers": cust.n, "transactions": int(order.size)},
        "distinct_rows": int(rows.customer.size),
        "orphans": {
            "transactions": int(orphan_rows.sum()),
            "unknown_customer": int((customer[order] >= cust.n).sum()),
            "unknown_article": int((article[order] >= cat.n).sum()),
            "ghost_customers": n_orphan_cust,
            "ghost_articles": n_orphan_art,
        },
        "mess": {
            "missing_age": int(cust.age_missing.sum()),
            "empty_fn": int((~cust.fn).sum()),
            "empty_active": int((~cust.active).sum()),
            "empty_club_member_status": int((cust.club == CLUB.index("")).sum()),
            "news_none_spelling": int((cust.news == NEWS.index("None")).sum()),
            "empty_fashion_news_frequency": int((cust.news == NEWS.index("")).sum()),
            "missing_detail_desc": sum(d is None for d in cat.detail_desc),
            "same_day_repeated_rows": int(order.size - rows.customer.size),
        },
        "final_window": {
            "days": oracle_days,
            "transactions": int(final.sum()),
            "buyers": int(np.unique(rows.customer[final]).size),
            "cold_users": int(np.unique(rows.customer[final][~buyers_before[rows.customer[final]]]).size),
            "cold_articles": int(np.unique(rows.article[final][~seen_before[rows.article[final]]]).size),
        },
        "oracle_users": n_oracle_users,
        "seconds": {
            "simulate": round(t_sim - t_start, 3),
            "total": round(time.perf_counter() - t_start, 3),
        },
        "n_transactions_target": cfg.n_transactions,
    }
