"""The history-limited taste estimate of the synthetic ceiling (scripts/synthetic_ceiling.py): what a
customer's purchases reveal of their taste under the generator's own purchase model."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from dc003.data.synthetic import _rng
from dc003.data.synthetic_catalogue import build_catalogue
from dc003.data.synthetic_config import SyntheticConfig, calendar
from dc003.data.synthetic_customers import build_customers
from dc003.data.synthetic_oracle import oracle_top_k
from dc003.data.synthetic_posterior import last_purchases, posterior_taste
from dc003.data.synthetic_sampling import simulate
from dc003.data.synthetic_taste import build_taste, item_vectors, user_vector_parts
from dc003.data.synthetic_vocab import build_taxonomy


@pytest.fixture(scope="module")
def world() -> dict[str, Any]:
    cfg = SyntheticConfig(n_customers=400, n_articles=600, n_transactions=20_000)
    cal, tax = calendar(cfg), build_taxonomy()
    cat = build_catalogue(cfg, cal, tax, _rng(5, "catalogue"))
    cust = build_customers(cfg, cal, _rng(5, "customers"))
    taste = build_taste(cfg, cal, tax, cat, cust, _rng(5, "taste"))
    rows = simulate(cfg, cal, cust, cat, taste, _rng(5, "purchases"))
    replay = _rng(5, "taste")
    item_vectors(cfg, tax, cat, replay)
    segment, _ = user_vector_parts(cfg, cust, replay)
    return {"cfg": cfg, "cal": cal, "cat": cat, "taste": taste, "rows": rows, "segment": segment}


def test_last_purchases_keeps_each_customers_latest_rows_before_the_cutoff() -> None:
    customer = np.array([0, 0, 0, 1, 1, 2])
    day = np.array([1, 5, 9, 2, 3, 8])
    article = np.array([10, 11, 12, 20, 21, 30])
    c, d, a = last_purchases(customer, day, article, before_day=9, max_history=1)
    assert c.tolist() == [0, 1, 2] and d.tolist() == [5, 3, 8] and a.tolist() == [11, 21, 30]
    c, _, a = last_purchases(customer, day, article, before_day=6, max_history=5)
    assert c.tolist() == [0, 0, 1, 1] and sorted(a.tolist()) == [10, 11, 20, 21]


def test_posterior_mode_is_closer_to_the_true_taste_than_the_features_alone(world: dict[str, Any]) -> None:
    cfg, cal, cat, taste, rows, segment = (
        world[k] for k in ("cfg", "cal", "cat", "taste", "rows", "segment")
    )
    cutoff = cal.n_days - 7
    h_cust, h_day, h_art = last_purchases(rows.customer, rows.day, rows.article, cutoff, 50)
    counts = np.bincount(h_cust, minlength=taste.user.shape[0])
    buyers = np.flatnonzero(counts >= 10)
    cold = np.flatnonzero(counts == 0)[:5]
    customers = np.sort(np.r_[buyers, cold])
    post = posterior_taste(cfg, cat, taste, segment, (h_cust, cal.block_of(h_day), h_art), customers)
    assert post.mode.shape == (customers.size, taste.user.shape[1])
    assert post.n_purchases.tolist() == np.minimum(counts[customers], 50).tolist()
    truth = taste.user[customers].astype(np.float64)
    warm = post.n_purchases >= 10
    err_mode = ((post.mode - truth) ** 2).sum(axis=1)[warm].mean()
    err_prior = ((segment[customers] - truth) ** 2).sum(axis=1)[warm].mean()
    assert err_mode < 0.8 * err_prior  # the purchases reveal a good part of the individual taste
    # no purchase, no evidence: the mode is the prior mean and the covariance the prior's
    none = post.n_purchases == 0
    assert none.any()
    np.testing.assert_allclose(post.mode[none], segment[customers][none], atol=1e-9)
    prior_sd = np.sqrt((1 - cfg.segment_weight) / taste.user.shape[1])
    diagonal = np.abs(np.diagonal(post.chol_cov, axis1=1, axis2=2))
    np.testing.assert_allclose(diagonal[none], prior_sd, rtol=1e-6)
    # evidence shrinks the uncertainty
    spread = diagonal.mean(axis=1)
    assert spread[warm].mean() < prior_sd
    draw = post.sample(np.random.default_rng(0))
    assert draw.shape == post.mode.shape and np.isfinite(draw).all()


def test_oracle_averages_the_propensity_over_taste_draws(world: dict[str, Any]) -> None:
    cfg, cal, cat, taste, rows = (world[k] for k in ("cfg", "cal", "cat", "taste", "rows"))
    _, top, scores = oracle_top_k(cfg, cal, cat, taste, rows, oracle_days=7, oracle_k=20)
    same = oracle_top_k(
        cfg, cal, cat, taste, rows, oracle_days=7, oracle_k=20, user_draws=[taste.user, taste.user]
    )
    np.testing.assert_array_equal(same[1], top)
    np.testing.assert_allclose(same[2], scores, rtol=1e-5)
    other = np.random.default_rng(1).normal(size=taste.user.shape).astype(np.float32)
    mixed = oracle_top_k(
        cfg, cal, cat, taste, rows, oracle_days=7, oracle_k=20, user_draws=[taste.user, other]
    )
    assert not np.array_equal(mixed[1], top)
