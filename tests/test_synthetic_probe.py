"""The taste probe of the user embeddings (dc003.data.synthetic_probe): the ridge probe's out-of-fold R^2,
the replay of the generator's taste parts, and the alignment of embeddings to the generator's customers."""

from __future__ import annotations

import numpy as np
import pytest

from dc003.data.synthetic_probe import TasteParts, embedding_probe, ridge_probe, taste_parts


def test_ridge_probe_recovers_a_known_share_of_variance_out_of_fold() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6000, 8))
    w = rng.normal(size=(8, 3))
    signal = x @ w
    # noise with the signal's variance per column: the population R^2 is one half
    y = signal + rng.normal(size=signal.shape) * signal.std(axis=0)
    pred, r2 = ridge_probe(x, y, lam=1e-2)
    assert pred.shape == y.shape
    assert r2 == pytest.approx(0.5, abs=0.03)
    assert ridge_probe(x, y)[1] == pytest.approx(0.5, abs=0.03)  # the ridge chosen by inner folds
    # inputs unrelated to the target: out of fold, nothing is explained (in sample, OLS would claim some);
    # a fixed small ridge in many dimensions over few rows fits noise and scores below 0, the chosen one
    # shrinks towards the mean
    noise = rng.normal(size=(200, 60))
    assert ridge_probe(noise, y[:200], lam=1e-2)[1] < -0.2
    assert -0.05 < ridge_probe(noise, y[:200])[1] < 0.01


def test_taste_parts_replay_the_generators_customer_vectors() -> None:
    from dc003.data.synthetic import _rng
    from dc003.data.synthetic_catalogue import build_catalogue
    from dc003.data.synthetic_config import calendar, scale_preset
    from dc003.data.synthetic_customers import build_customers
    from dc003.data.synthetic_taste import build_taste
    from dc003.data.synthetic_vocab import build_taxonomy

    parts = taste_parts("tiny", 7)
    cfg = scale_preset("tiny")
    cal, tax = calendar(cfg), build_taxonomy()
    cat = build_catalogue(cfg, cal, tax, _rng(7, "catalogue"))
    cust = build_customers(cfg, cal, _rng(7, "customers"))
    taste = build_taste(cfg, cal, tax, cat, cust, _rng(7, "taste"))
    assert parts.customer_ids == [bytes(h).decode() for h in cust.hex_ids]
    np.testing.assert_allclose(parts.segment + parts.individual, taste.user, rtol=1e-5, atol=1e-6)
    # both parts carry weight (segment_weight splits the variance between them)
    assert np.abs(parts.individual).mean() > 0.1 * np.abs(parts.segment).mean()


def _parts(n: int = 900, d: int = 6) -> TasteParts:
    rng = np.random.default_rng(1)
    return TasteParts(
        customer_ids=[f"c{i:04d}" for i in range(n)],
        segment=rng.normal(size=(n, d)),
        individual=rng.normal(size=(n, d)),
    )


def test_embedding_probe_aligns_rows_by_customer_id_and_scores_each_band() -> None:
    parts = _parts()
    order = np.random.default_rng(2).permutation(len(parts.customer_ids))
    ids = [parts.customer_ids[i] for i in order]
    # an embedding that holds the individual part exactly, rows in another order than the generator's
    emb = np.hstack([parts.individual[order], np.zeros((order.size, 2))])
    bands = {"short": np.arange(order.size) < 300, "long": np.arange(order.size) >= 300}
    out = embedding_probe(parts, ids, emb, bands)
    assert out["customers"] == order.size
    assert out["individual_r2"] > 0.99
    assert out["feature_r2"] < 0.05  # independent of the individual part
    assert out["individual_r2_by_band"]["short"]["customers"] == 300
    assert all(b["r2"] > 0.99 for b in out["individual_r2_by_band"].values())
    # the same rows matched to the wrong customers: nothing of either part
    shuffled = embedding_probe(parts, ids[::-1], emb, bands)
    assert shuffled["individual_r2"] < 0.05


def test_embedding_probe_says_why_it_skips_customers_the_generator_does_not_have() -> None:
    parts = _parts(n=50)
    out = embedding_probe(parts, ["c0001", "someone-else"], np.zeros((2, 3)), {})
    assert "individual_r2" not in out
    assert "1 of 2 customers" in out["skipped"] and "someone-else" in out["skipped"]
