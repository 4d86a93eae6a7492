"""Purchase simulation: visits (customer-days), basket sizes, a nested department -> article choice
from the hidden taste model, repeat purchases, prices, channels and quantities. Vectorised with
numpy in bounded chunks so the full Kaggle size (31.8M rows) fits in a few GB."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from dc003.data.synthetic_catalogue import Catalogue
from dc003.data.synthetic_config import Calendar, SyntheticConfig
from dc003.data.synthetic_customers import _CH2_IF_ONLINE, _CH2_IF_STORE, Customers
from dc003.data.synthetic_taste import Taste, products

_CELLS = 1 << 22  # logits computed per chunk (32 MiB of float64)
_EXTRA_COPIES_P = 0.7  # extra copies of a row bought in quantity: geometric, mean 1/0.7
_SATIATION_ROUNDS = 10
_CANDIDATES = 4  # redraws per rejected row and round
_BLOCK = 32  # columns per block of the two-level sampler
_SPAN = 16  # weeks of rows sampled against one article set (small departments)
_WIDE_DEPT = 150  # mean articles per department from which rows are grouped week by week
_SALE_FACTORS = np.array([0.9, 0.8, 0.7, 0.6, 0.5])


@dataclass(frozen=True)
class Rows:
    """Distinct purchase rows (before quantities), ordered by (customer, day)."""

    customer: np.ndarray  # int32
    day: np.ndarray  # int16
    article: np.ndarray  # int32
    channel: np.ndarray  # int8, 1 or 2
    cents: np.ndarray  # int32 price paid, 1/100 currency units


def _padded(n: int) -> int:
    """Columns for ``n`` choices: wide ones rounded up to whole _BLOCK-wide blocks (the extra
    columns get zero weight); narrow ones as they are (drawn directly)."""
    return n if n <= 2 * _BLOCK else -(-n // _BLOCK) * _BLOCK


def _draw(weights: np.ndarray, row: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Categorical draws: for each ``row[j]`` of the non-negative ``weights`` (columns a multiple
    of _BLOCK), the column picked with uniform ``u[j]``.

    Two-level inverse CDF: a block of _BLOCK columns by the block sums, then a column inside the
    block. Each cell is touched once (for the block sums) instead of by a full-width cumulative
    sum and comparison, which made this the generator's hottest loop."""
    n, m = weights.shape
    if m <= 2 * _BLOCK:  # narrow: one cumulative sum is cheaper than two levels
        cdf = np.cumsum(weights[row] if row.size != n else weights, axis=1)
        target = u * cdf[:, -1]
        return np.minimum((cdf <= target[:, None]).sum(axis=1), m - 1)
    nb = m // _BLOCK
    blocks = weights.reshape(n, nb, _BLOCK)
    block_sum = blocks.sum(axis=2)
    cum = np.cumsum(block_sum, axis=1)[row]
    target = u * cum[:, -1]
    j = np.minimum((cum <= target[:, None]).sum(axis=1), nb - 1)
    empty = block_sum[row, j] <= 0  # rounding at the very top: fall back to the last non-empty block
    if empty.any():
        j[empty] = nb - 1 - np.argmax(block_sum[row[empty], ::-1] > 0, axis=1)
    draws = np.arange(row.size)
    rest = target - np.where(j > 0, cum[draws, np.maximum(j - 1, 0)], 0.0)
    inner = np.cumsum(blocks[row, j], axis=1)
    rest = np.minimum(rest, inner[:, -1] * (1 - 1e-6))  # stay inside the chosen block
    # first column whose cumulative weight exceeds the rest; zero-weight columns are never chosen
    i = np.minimum((inner <= rest[:, None]).sum(axis=1), _BLOCK - 1)
    return j * _BLOCK + i


def _softmax_weights(logits: np.ndarray) -> np.ndarray:
    """exp(logits - row max), in place; -inf logits get weight 0."""
    logits -= logits.max(axis=1, keepdims=True)
    return np.exp(logits, out=logits)


def _visits(
    cfg: SyntheticConfig, cal: Calendar, cust: Customers, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Customer-days (customer, day) sorted, plus the number of distinct articles in each."""
    rows_per_visit = cfg.basket_mean * (1 + cfg.quantity_rate / _EXTRA_COPIES_P)
    n_visits = max(1, round(cfg.n_transactions / rows_per_visit))
    cdf = np.cumsum(cal.day_volume(cfg))
    cdf /= cdf[-1]
    buyers = np.flatnonzero(cust.is_buyer)
    join_cdf = np.where(cust.join_day[buyers] > 0, cdf[cust.join_day[buyers] - 1], 0.0)
    # one visit each, the rest shared by activity x the share of the period after joining
    share = cust.activity[buyers] * (1 - join_cdf)
    extra = rng.multinomial(max(0, n_visits - buyers.size), share / share.sum())
    counts = 1 + extra
    customer = np.repeat(buyers, counts).astype(np.int32)
    lo = np.repeat(join_cdf, counts)
    day = np.minimum(
        np.searchsorted(cdf, lo + rng.random(customer.size) * (1 - lo), side="right"), cal.n_days - 1
    )
    first = np.r_[0, np.cumsum(counts)[:-1]]
    new = cust.is_new[buyers]
    day[first[new]] = cust.join_day[buyers[new]]  # a new customer's first purchase is the join day
    order = np.lexsort((day, customer))
    customer, day = customer[order], day[order].astype(np.int16)
    size = 1 + rng.poisson(cfg.basket_mean - 1, customer.size)
    return customer, day, size


def _pick_departments(
    taste: Taste, customer: np.ndarray, block: np.ndarray, size: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Department of each row: one softmax per visit, ``size`` draws from it."""
    n_dept = taste.dept.shape[1]
    width = _padded(n_dept)
    dept_w = np.zeros((taste.dept.shape[0], width), dtype=np.float64)
    dept_w[:, :n_dept] = taste.dept
    mass = np.full((taste.log_mass.shape[0], width), -np.inf, dtype=np.float64)
    mass[:, :n_dept] = taste.log_mass
    out = np.empty(int(size.sum()), dtype=np.int16)
    first_row = np.cumsum(size) - size
    u_all = rng.random(out.size)
    # visits week by week: the week's assortment mass is then one broadcast row, not a gather
    by_block = np.argsort(block, kind="stable")
    bounds = np.flatnonzero(np.r_[True, block[by_block][1:] != block[by_block][:-1], True])
    chunk = max(1, _CELLS // width)
    for g0, g1 in itertools.pairwise(bounds):
        week_mass = mass[int(block[by_block[g0]])]
        for v0 in range(g0, g1, chunk):
            visits = by_block[v0 : min(g1, v0 + chunk)]
            logits = products(taste.user[customer[visits]], dept_w)
            logits += week_mass
            k = size[visits]
            local = np.repeat(np.arange(visits.size), k)
            # output rows of each visit: its first row plus 0..k-1
            rows = np.repeat(first_row[visits] - (np.cumsum(k) - k), k) + np.arange(local.size)
            out[rows] = _draw(_softmax_weights(logits), local, u_all[rows])
    return out


def _pick_articles(
    taste: Taste,
    cat: Catalogue,
    customer: np.ndarray,
    block: np.ndarray,
    dept: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """Article of each row inside its department, among the articles released by its week.

    Rows are grouped by (department, span of _SPAN weeks): one matrix product per group, over the
    articles released by the span's last week; an article released later than a row's own week
    has a -inf log weight there, so it cannot be drawn."""
    by_dept = np.lexsort((cat.release_block, cat.department))  # articles grouped by dept, by release
    dept_start = np.searchsorted(cat.department[by_dept], np.arange(taste.dept.shape[1] + 1))
    released = cat.release_block[by_dept]
    n_blocks = taste.log_weight.shape[0]
    # weeks per group: many when departments are small (fewer, larger matrix products), one when
    # they are large (then the week's log weights are a broadcast row, not a per-row gather)
    span = _SPAN if cat.n / max(1, taste.dept.shape[1]) < _WIDE_DEPT else 1
    n_spans = -(-n_blocks // span)
    key = dept.astype(np.int64) * n_spans + block // span
    order = np.argsort(key, kind="stable")
    skey = key[order]
    bounds = np.flatnonzero(np.r_[True, skey[1:] != skey[:-1], True])
    out = np.empty(customer.size, dtype=np.int32)
    u_all = rng.random(customer.size)
    for g0, g1 in itertools.pairwise(bounds):
        c, g = divmod(int(skey[g0]), n_spans)
        b0, b1 = g * span, min((g + 1) * span, n_blocks)
        lo = dept_start[c]
        hi = lo + int(np.searchsorted(released[lo : dept_start[c + 1]], b1 - 1, side="right"))
        items = by_dept[lo:hi]
        width = _padded(items.size)
        w_items = np.zeros((taste.item.shape[0], width), dtype=np.float64)
        w_items[:, : items.size] = taste.item[:, items]
        logw = np.full((b1 - b0, width), -np.inf, dtype=np.float64)
        logw[:, : items.size] = taste.log_weight[b0:b1, items]
        step = max(1, _CELLS // width)
        for r0 in range(g0, g1, step):
            rows = order[r0 : min(g1, r0 + step)]
            logits = products(taste.user[customer[rows]], w_items)
            logits += logw[0] if span == 1 else logw[block[rows] - b0]
            out[rows] = items[_draw(_softmax_weights(logits), np.arange(rows.size), u_all[rows])]
    return out


@dataclass(frozen=True)
class _Bought:
    """When each (customer, article) pair was first bought, for a set of (customer, day)-ordered rows."""

    codes: np.ndarray  # sorted distinct customer * n_articles + article
    first_day: np.ndarray
    n_articles: int

    @classmethod
    def of(
        cls, customer: np.ndarray, day: np.ndarray, article: np.ndarray, n_articles: int
    ) -> tuple[_Bought, np.ndarray]:
        """The table, and for each given row whether its own pair was bought on an earlier day."""
        key = customer.astype(np.int64) * n_articles + article
        order = np.argsort(key, kind="stable")  # stable: each pair's rows stay in day order
        skey = key[order]
        first = np.flatnonzero(np.r_[True, skey[1:] != skey[:-1]])
        sday = day[order]
        seen = np.empty(key.size, dtype=bool)
        seen[order] = sday > np.repeat(sday[first], np.diff(np.r_[first, key.size]))
        return cls(codes=skey[first], first_day=sday[first], n_articles=n_articles), seen

    def before(self, customer: np.ndarray, article: np.ndarray, day: np.ndarray) -> np.ndarray:
        """Whether each (customer, article) was bought on a day before ``day``."""
        if self.codes.size == 0:
            return np.zeros(customer.size, dtype=bool)
        key = customer.astype(np.int64) * self.n_articles + article
        pos = np.minimum(np.searchsorted(self.codes, key), self.codes.size - 1)
        return (self.codes[pos] == key) & (self.first_day[pos] < day)


def _satiate(
    cfg: SyntheticConfig,
    taste: Taste,
    cat: Catalogue,
    rows: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    article: np.ndarray,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Customers rarely buy an article again: fresh picks follow the fresh distribution with every
    article the customer bought on an earlier day down-weighted by (1 - satiation).

    Plain rejection sampling: a pick of a bought article is kept with probability 1 - satiation,
    otherwise department and article are drawn afresh (_CANDIDATES at a time, the first one that
    passes is taken). Redraws change what later rows count as bought, so each round re-checks the
    customers touched. Rows still rejected after _SATIATION_ROUNDS keep their last pick (customers
    who have bought most of what they like)."""
    customer, day, block, dept = rows
    if cfg.satiation <= 0:
        return dept, article
    dept, article = dept.copy(), article.copy()
    final = np.zeros(customer.size, dtype=bool)
    check = np.ones(int(customer.max(initial=0)) + 1, dtype=bool)
    for round_no in range(_SATIATION_ROUNDS):
        idx = np.flatnonzero(check[customer])
        bought, seen = _Bought.of(customer[idx], day[idx], article[idx], cat.n)
        conflict = idx[seen & ~final[idx]]
        keep = rng.random(conflict.size) >= cfg.satiation
        final[conflict[keep]] = True
        redo = conflict[~keep]
        if redo.size == 0:
            break
        # one candidate per row at first (most redraws pass), more for the stubborn rows later;
        # candidates are row-major: redo[0] x k, redo[1] x k, ...
        k = 1 if round_no < 3 else _CANDIDATES
        c_row = np.repeat(redo, k)
        c_dept = _pick_departments(taste, customer[redo], block[redo], np.full(redo.size, k), rng)
        c_art = _pick_articles(taste, cat, customer[c_row], block[c_row], c_dept, rng)
        fresh = ~bought.before(customer[c_row], c_art, day[c_row])
        lucky = rng.random(c_row.size) >= cfg.satiation  # a bought article that passes the test
        passes = (fresh | lucky).reshape(redo.size, k)
        passes[:, -1] = True  # the last candidate is judged next round like any fresh pick
        pick = np.argmax(passes, axis=1)
        taken = np.arange(redo.size) * k + pick
        dept[redo], article[redo] = c_dept[taken], c_art[taken]
        # judged bought-and-kept picks are final; fresh ones are re-checked while others change
        final[redo[(pick < k - 1) & ~fresh[taken]]] = True
        check[:] = False
        check[customer[redo]] = True
    return dept, article


def _repeat(
    cfg: SyntheticConfig, customer: np.ndarray, day: np.ndarray, article: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """With probability repeat_rate a row instead re-buys the article of a uniformly chosen row of
    the same customer on an earlier day (rows are in (customer, day) order)."""
    n = customer.size
    idx = np.arange(n)
    new_cust = np.r_[True, customer[1:] != customer[:-1]]
    new_day = new_cust | np.r_[True, day[1:] != day[:-1]]
    cust_start = np.maximum.accumulate(np.where(new_cust, idx, 0))
    day_start = np.maximum.accumulate(np.where(new_day, idx, 0))
    n_prev = day_start - cust_start
    flag = (rng.random(n) < cfg.repeat_rate) & (n_prev > 0)
    ptr = idx.copy()
    ptr[flag] = cust_start[flag] + (rng.random(int(flag.sum())) * n_prev[flag]).astype(np.int64)
    while True:  # follow repeat-of-a-repeat chains to the original (pointers only go backwards)
        nxt = ptr[ptr]
        if np.array_equal(nxt, ptr):
            return article[ptr]
        ptr = nxt


def simulate(
    cfg: SyntheticConfig,
    cal: Calendar,
    cust: Customers,
    cat: Catalogue,
    taste: Taste,
    rng: np.random.Generator,
) -> Rows:
    """All distinct purchase rows, in (customer, day) order."""
    v_cust, v_day, size = _visits(cfg, cal, cust, rng)
    v_block = cal.block_of(v_day)
    dept = _pick_departments(taste, v_cust, v_block, size, rng)
    customer = np.repeat(v_cust, size)
    day = np.repeat(v_day, size)
    block = np.repeat(v_block, size)
    article = _pick_articles(taste, cat, customer, block, dept, rng)
    dept, article = _satiate(cfg, taste, cat, (customer, day, block, dept), article, rng)
    article = _repeat(cfg, customer, day, article, rng)

    online = cust.online[v_cust]
    v_channel = np.where(rng.random(v_cust.size) < np.where(online, _CH2_IF_ONLINE, _CH2_IF_STORE), 2, 1)
    channel = np.repeat(v_channel.astype(np.int8), size)
    # markdowns grow with an article's age; the shelf price is otherwise what is paid
    weeks = block - cat.release_block[article]
    on_sale = rng.random(article.size) < np.clip(0.04 + 0.012 * weeks, 0.0, 0.5)
    factor = np.where(on_sale, _SALE_FACTORS[rng.integers(0, len(_SALE_FACTORS), article.size)], 1.0)
    cents = np.maximum(1, np.rint(cat.price_cents[article] * factor)).astype(np.int32)
    return Rows(customer=customer, day=day, article=article.astype(np.int32), channel=channel, cents=cents)


def quantities(cfg: SyntheticConfig, n: int, rng: np.random.Generator) -> np.ndarray:
    """Copies of each distinct row: the same article bought twice or more in one customer-day."""
    extra = np.where(rng.random(n) < cfg.quantity_rate, rng.geometric(_EXTRA_COPIES_P, n), 0)
    return 1 + extra
