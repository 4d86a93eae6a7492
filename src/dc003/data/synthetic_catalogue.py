"""The synthetic article catalogue: products (a name, a description, a department, a product type,
style themes, a price and a release week) and their colour variants (the articles)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dc003.data.synthetic_config import Calendar, SyntheticConfig
from dc003.data.synthetic_text import product_texts
from dc003.data.synthetic_vocab import Taxonomy

# shelf prices in currency units; a transaction price is units / 590, as the Kaggle prices are scaled
PRICE_LADDER = np.array(
    [2.99, 3.99, 4.99, 5.99, 6.99, 7.99, 8.99, 9.99, 12.99, 14.99, 17.99, 19.99, 24.99, 29.99, 34.99,
     39.99, 49.99, 59.99, 69.99, 79.99, 99.99, 129.99, 149.99, 199.99, 249.99]
)  # fmt: skip
PRICE_SCALE = 590.0
N_PRICE_LEVELS = 10
_MEAN_VARIANTS = 2.23  # articles per product_code in the real catalogue
_SMALL_TOPICS = {"home": 0.08, "care": 0.05, "gifts": 0.12, "beauty": 0.15, "offers": 0.3}
_BIG_TOPICS = {"jersey": 1.6, "basics": 1.3, "dresses": 1.4, "trousers": 1.3, "knit": 1.2, "accs": 1.2}
_STYLE_PREMIUM = np.array([0, 0, 1, 0, 0, 1, 1, 0, 1, 0, 0, 0])  # classic, minimal, glam, preppy cost more


@dataclass(frozen=True)
class Catalogue:
    """Per-article arrays, in article_id order (product codes grow with the release week)."""

    article_id: list[str]
    product_code: np.ndarray
    department: np.ndarray
    product_type: np.ndarray
    colour: np.ndarray
    colour_value: np.ndarray
    graphical: np.ndarray
    style1: np.ndarray
    style2: np.ndarray
    price_cents: np.ndarray  # shelf price in 1/100 currency units
    price_level: np.ndarray  # 0..N_PRICE_LEVELS-1, the price band the taste model sees
    release_block: np.ndarray  # calendar block of release; <= 0 for the back catalogue
    log_popularity: np.ndarray  # base popularity, log scale, mean 0
    prod_name: list[str]
    detail_desc: list[str | None]

    @property
    def n(self) -> int:
        return len(self.article_id)


def _department_weights(tax: Taxonomy, rng: np.random.Generator) -> np.ndarray:
    topics = tax.topic_keys
    topic_w = np.array([_SMALL_TOPICS.get(t, _BIG_TOPICS.get(t, 1.0)) for t in topics])
    # moderate spread: with sharp tastes, a few giant departments would dominate every top list
    w = topic_w[tax.topic_of_department] * rng.lognormal(0.0, 0.4, tax.n_departments)
    return w / w.sum()


def _release_blocks(n: int, cfg: SyntheticConfig, cal: Calendar, rng: np.random.Generator) -> np.ndarray:
    """Back catalogue in the year before start; the rest released with the volume curve, including
    a few products in the final week so that it holds never-bought (cold) articles."""
    vol = cal.day_volume(cfg)
    block_vol = np.bincount(cal.block_of(np.arange(cal.n_days)), weights=vol, minlength=cal.n_blocks)[1:]
    back = rng.random(n) < cfg.back_catalogue_share
    blocks = np.where(
        back, -rng.integers(0, 52, n), 1 + rng.choice(cal.n_blocks - 1, n, p=block_vol / block_vol.sum())
    )
    last = cal.n_blocks - 1
    need = min(n - 1, max(2, round(0.004 * n))) - int((blocks == last).sum())
    if need > 0:  # force some releases into the final week (the tiny scale would often have none)
        blocks[rng.choice(np.flatnonzero(blocks != last), need, replace=False)] = last
    if blocks.min() > 0:  # something must be on sale from the first week
        blocks[int(np.argmin(blocks))] = 0
    return blocks.astype(np.int16)


def build_catalogue(
    cfg: SyntheticConfig, cal: Calendar, tax: Taxonomy, rng: np.random.Generator
) -> Catalogue:
    n_art = cfg.n_articles
    # products and their variant counts (1 + negative binomial, mean _MEAN_VARIANTS)
    counts = 1 + rng.negative_binomial(0.6, 0.6 / (0.6 + _MEAN_VARIANTS - 1), size=n_art)
    cum = np.cumsum(counts)
    n_prod = int(np.searchsorted(cum, n_art)) + 1
    counts = counts[:n_prod]
    counts[-1] -= int(cum[n_prod - 1] - n_art)

    dept = rng.choice(tax.n_departments, n_prod, p=_department_weights(tax, rng)).astype(np.int16)
    topic = tax.topic_of_department[dept]
    section = tax.section_of_department[dept]
    # product type: a topic's types with fixed-per-seed uneven shares
    ptype = np.empty(n_prod, dtype=np.int16)
    for t, types in enumerate(tax.topic_types):
        rows = np.flatnonzero(topic == t)
        w = rng.lognormal(0.0, 0.8, len(types))
        ptype[rows] = types[rng.choice(len(types), len(rows), p=w / w.sum())]
    # style themes: the section's favoured themes most of the time, any theme otherwise
    n_styles = len(tax.style_names)
    favoured = np.array([s[int(rng.integers(len(s)))] for s in (tax.section_styles[i] for i in section)])
    style1 = np.where(rng.random(n_prod) < 0.6, favoured, rng.integers(0, n_styles, n_prod)).astype(np.int16)
    style2 = ((style1 + rng.integers(1, n_styles, n_prod)) % n_styles).astype(np.int16)
    kids = tax.index_group_of_index[tax.index_of_section[section]] == tax.index_group_names.index("Kids")
    step = (
        tax.topic_price_step[topic]
        + tax.section_premium[section]
        + _STYLE_PREMIUM[style1]
        - 3 * kids
        + np.rint(rng.normal(0.0, 1.5, n_prod))
    )
    price_idx = np.clip(step, 0, len(PRICE_LADDER) - 1).astype(np.int64)
    release = _release_blocks(n_prod, cfg, cal, rng)
    prod_pop = rng.normal(0.0, 1.0, n_prod)
    names, descs = product_texts(tax, ptype, style1, style2, rng)

    # product codes grow with release week, as real H&M codes do
    codes = np.sort(rng.choice(np.arange(108_000, 960_000), n_prod, replace=False))
    order = np.lexsort((rng.random(n_prod), release))
    code_of = np.empty(n_prod, dtype=np.int64)
    code_of[order] = codes

    # articles: variants of products, in product-code order
    by_code = np.argsort(code_of)
    prod = np.repeat(by_code, counts[by_code])
    first = np.r_[0, np.cumsum(counts[by_code])[:-1]]
    rank = np.arange(n_art) - np.repeat(first, counts[by_code])
    variant = _variant_numbers(rank, rng)
    colour_w = rng.lognormal(0.0, 1.0, len(tax.colour_names))
    colour_w[[0, 7, 45, 4]] *= 6  # black, white, navy and grey dominate a fashion catalogue
    colour = rng.choice(len(tax.colour_names), n_art, p=colour_w / colour_w.sum()).astype(np.int16)
    value = np.where(rng.random(n_art) < 0.75, tax.value_of_colour[colour], rng.integers(0, 6, n_art)).astype(
        np.int16
    )
    graph_prod = np.where(rng.random(n_prod) < 0.5, 0, rng.integers(1, len(tax.graphical_names) - 1, n_prod))
    graphical = np.where(
        rng.random(n_art) < 0.8, graph_prod[prod], rng.integers(0, len(tax.graphical_names) - 1, n_art)
    ).astype(np.int16)
    unknown = tax.product_type_nos[ptype[prod]] == -1
    value[unknown] = len(tax.colour_value_names) - 1
    graphical[unknown] = len(tax.graphical_names) - 1
    cents = np.rint(PRICE_LADDER[price_idx[prod]] * 100).astype(np.int32)
    price_level = (price_idx[prod] * N_PRICE_LEVELS // len(PRICE_LADDER)).astype(np.int16)

    desc: list[str | None] = [descs[p] for p in prod]
    n_missing = min(n_art, max(1, round(cfg.missing_desc_rate * n_art)))
    for i in rng.choice(n_art, n_missing, replace=False):
        desc[int(i)] = None
    art_code = code_of[prod]
    return Catalogue(
        article_id=[f"0{c:06d}{v:03d}" for c, v in zip(art_code.tolist(), variant.tolist(), strict=True)],
        product_code=art_code.astype(np.int32),
        department=dept[prod],
        product_type=ptype[prod],
        colour=colour,
        colour_value=value,
        graphical=graphical,
        style1=style1[prod],
        style2=style2[prod],
        price_cents=cents,
        price_level=price_level,
        release_block=release[prod],
        log_popularity=(0.8 * prod_pop[prod] + 0.6 * rng.normal(0.0, 1.0, n_art)).astype(np.float32),
        prod_name=[names[p] for p in prod],
        detail_desc=desc,
    )


def _variant_numbers(rank: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Three-digit variant suffixes, increasing within a product (001, 004, 015, ...)."""
    steps = rng.integers(1, 12, rank.size)
    steps[rank == 0] = 1
    cum = np.cumsum(steps)
    start = cum[rank == 0]
    out = cum - np.repeat(start, np.diff(np.r_[np.flatnonzero(rank == 0), rank.size])) + 1
    return np.minimum(out, 999)
