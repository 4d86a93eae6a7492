"""The oracle: each final-window buyer's top articles by the TRUE purchase propensity of the hidden
model at the start of that window, so evaluation can report an upper bound on recall."""

from __future__ import annotations

import itertools

import numpy as np

from dc003.data.synthetic_catalogue import Catalogue
from dc003.data.synthetic_config import Calendar, SyntheticConfig
from dc003.data.synthetic_sampling import Rows
from dc003.data.synthetic_taste import Taste, products

_CELLS = 1 << 23  # (users x articles) float64 cells per block: 64 MiB


def oracle_top_k(
    cfg: SyntheticConfig,
    cal: Calendar,
    cat: Catalogue,
    taste: Taste,
    rows: Rows,
    *,
    oracle_days: int,
    oracle_k: int,
    user_draws: list[np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(customers, articles (U, k), scores (U, k)) for every customer with a purchase in the last
    ``oracle_days`` days, over articles released by the window start; best first, ties to the
    lower article index.

    Propensity = (1 - repeat_rate) x fresh + repeat_rate x the article's share of the customer's
    purchases before the window (repeat part only with history), where fresh = P(department) x
    P(article | department) with the articles bought before down-weighted by (1 - satiation) and
    renormalised (the generator's rejection step redraws department and article).

    ``user_draws`` (each ``(n_customers, d)``): rank by the fresh propensity averaged over these taste
    vectors instead of ``taste.user`` (draws from a posterior: the posterior-expected propensity).
    """
    t0 = cal.n_days - oracle_days
    b0 = int(cal.block_of(np.array([t0]))[0])
    users = np.unique(rows.customer[rows.day >= t0])
    live = np.flatnonzero(cat.release_block <= b0)
    live = live[np.lexsort((live, cat.department[live]))]  # each department a contiguous run
    dept_of = cat.department[live]
    runs = np.flatnonzero(np.r_[True, dept_of[1:] != dept_of[:-1], True])
    item_w = np.ascontiguousarray(taste.item[:, live], dtype=np.float64)
    logw = taste.log_weight[b0, live]
    col_of = np.full(cat.n, -1, dtype=np.int64)
    col_of[live] = np.arange(live.size)
    before = rows.day < t0
    h_cust, h_col = rows.customer[before], col_of[rows.article[before]]

    k = min(oracle_k, live.size)
    out_art = np.empty((users.size, k), dtype=np.int32)
    out_score = np.empty((users.size, k), dtype=np.float64)
    step = max(1, _CELLS // live.size)
    for u0 in range(0, users.size, step):
        ub = users[u0 : u0 + step]
        draws = [taste.user] if user_draws is None else user_draws
        s = _fresh(draws[0][ub], taste, b0, item_w, logw, runs, dept_of)
        for more in draws[1:]:
            s += _fresh(more[ub], taste, b0, item_w, logw, runs, dept_of)
        if len(draws) > 1:
            s /= len(draws)
        _mix_history(cfg, s, ub, h_cust, h_col)
        arts, vals = _top_k(s, runs, k)
        out_art[u0 : u0 + ub.size] = live[arts]
        # scores as float32 values: the float64 products agree across BLAS kernels to ~1e-16, the
        # written bytes exactly (synthetic_taste.products)
        out_score[u0 : u0 + ub.size] = vals.astype(np.float32)
    return users, out_art, out_score


def _fresh(
    user: np.ndarray,
    taste: Taste,
    b0: int,
    item_w: np.ndarray,
    logw: np.ndarray,
    runs: np.ndarray,
    dept_of: np.ndarray,
) -> np.ndarray:
    """``(users, live articles)`` fresh-pick probability: P(department) x P(article | department)."""
    dl = products(user, taste.dept) + taste.log_mass[b0]
    p_dept = np.exp(dl - dl.max(axis=1, keepdims=True))
    p_dept /= p_dept.sum(axis=1, keepdims=True)
    s = products(user, item_w)
    s += logw
    for lo, hi in itertools.pairwise(runs):
        # softmax inside the department, times the department's probability
        part = s[:, lo:hi]
        part -= part.max(axis=1, keepdims=True)
        np.exp(part, out=part)
        part *= (p_dept[:, int(dept_of[lo])] / part.sum(axis=1))[:, None]
    return s


def _top_k(s: np.ndarray, runs: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the k best columns and values, best first, ties to the lower column.

    A full argpartition costs ~20 ns a cell; instead the k-th largest of the per-department
    maxima (k distinct columns reach it, so the row's k-th best is at least that) cuts the row to
    a few hundred candidates first."""
    n_rows = s.shape[0]
    if k <= runs.size - 1:
        dept_max = np.maximum.reduceat(s, runs[:-1], axis=1)
        floor = -np.partition(-dept_max, k - 1, axis=1)[:, k - 1]
        r, c = np.nonzero(s >= floor[:, None])
    else:  # fewer departments than k: every column is a candidate
        r, c = np.divmod(np.arange(s.size), s.shape[1])
    v = s[r, c].astype(np.float64)
    order = np.lexsort((c, -v, r))
    r, c, v = r[order], c[order], v[order]
    rank = np.arange(r.size) - np.searchsorted(r, r)
    top = rank < k
    cols = np.empty((n_rows, k), dtype=np.int64)
    vals = np.empty((n_rows, k), dtype=np.float64)
    cols[r[top], rank[top]] = c[top]
    vals[r[top], rank[top]] = v[top]
    return cols, vals


def _mix_history(
    cfg: SyntheticConfig, s: np.ndarray, ub: np.ndarray, h_cust: np.ndarray, h_col: np.ndarray
) -> None:
    """In place: down-weight the block users' earlier purchases by (1 - satiation), renormalise the
    fresh part, and add the repeat part (each earlier purchase re-bought with equal chance)."""
    pos = np.minimum(np.searchsorted(ub, h_cust), ub.size - 1)
    hit = (ub[pos] == h_cust) & (h_col >= 0)
    r, c = pos[hit], h_col[hit]
    if r.size == 0:
        return
    pairs = np.unique(r * s.shape[1] + c)
    flat = s.reshape(-1)
    hist_mass = np.bincount(pairs // s.shape[1], weights=flat[pairs], minlength=ub.size)
    flat[pairs] *= 1 - cfg.satiation
    n_hist = np.bincount(r, minlength=ub.size)
    share = np.where(n_hist > 0, 1 - cfg.repeat_rate, 1.0) / (1 - cfg.satiation * hist_mass)
    s *= share[:, None]
    np.add.at(s, (r, c), cfg.repeat_rate / n_hist[r])
