"""How much of the generator's customer taste a model's user embeddings hold (synthetic data only).

The generator draws each customer's taste as two parts (:func:`dc003.data.synthetic_taste.user_vector_parts`):
a segment part that the customer features decide (age, club status, news habit, channel) and an individual
part drawn per customer, which only their purchases reveal. A ridge probe fitted out of fold says how much
of each part's variance a linear map of the embeddings recovers (R^2): the individual part's R^2 is the
measure of whether the user tower learns a customer's taste from their purchases.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from dc003.data.synthetic_config import Scale

FOLDS = 5
# the ridge of the embedding probes, in units of the inputs' mean sum of squares per column: chosen per
# fold from this grid by an inner cross-validation, so a probe of few customers in many dimensions shrinks
# towards their mean instead of fitting noise
LAMBDAS = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)


def ridge_probe(
    x: np.ndarray, y: np.ndarray, lam: float | None = None, seed: int = 0
) -> tuple[np.ndarray, float]:
    """Out-of-fold predictions of ``y`` from ``x`` (ridge with an intercept, ``FOLDS`` folds) and their
    R^2 (one minus the residual over the total sum of squares, every output column pooled). ``lam``: the
    ridge; ``None`` picks it for each fold from :data:`LAMBDAS` (times the training rows' mean sum of squares
    per input column) by a ``FOLDS``-fold cross-validation inside that fold's training rows (the held-out
    rows never take part in the choice)."""
    x = np.hstack([x, np.ones((x.shape[0], 1))])
    pred = np.zeros_like(y)
    for train, held in _folds(x.shape[0], seed):
        best = lam if lam is not None else _pick_lambda(x[train], y[train], seed)
        pred[held] = x[held] @ _fit(x[train], y[train], best)
    return pred, _r2(y, pred, y.mean(axis=0))


def _folds(n: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    order = np.random.default_rng(seed).permutation(n)
    return [(np.setdiff1d(order, held), held) for held in np.array_split(order, FOLDS)]


def _fit(x: np.ndarray, y: np.ndarray, lam: float) -> np.ndarray:
    return np.linalg.solve(x.T @ x + lam * np.eye(x.shape[1]), x.T @ y)


def _pick_lambda(x: np.ndarray, y: np.ndarray, seed: int) -> float:
    unit = float((x[:, :-1] ** 2).sum(axis=0).mean())  # the last column is the intercept's
    grid = [c * unit for c in LAMBDAS]
    sse = np.zeros(len(grid))
    for train, held in _folds(x.shape[0], seed + 1):
        for i, lam in enumerate(grid):
            sse[i] += float(((y[held] - x[held] @ _fit(x[train], y[train], lam)) ** 2).sum())
    return grid[int(np.argmin(sse))]


def _r2(y: np.ndarray, pred: np.ndarray, centre: np.ndarray) -> float:
    return 1.0 - float(((y - pred) ** 2).sum() / ((y - centre) ** 2).sum())


def replay_taste_parts(cfg: Any, tax: Any, cat: Any, cust: Any, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(segment, individual)`` of every customer: the generator's taste stream replayed (it draws the
    department and article vectors first, then the customers' two parts)."""
    from dc003.data.synthetic import _rng
    from dc003.data.synthetic_taste import item_vectors, user_vector_parts

    replay = _rng(seed, "taste")
    item_vectors(cfg, tax, cat, replay)
    return user_vector_parts(cfg, cust, replay)


@dataclass(frozen=True)
class TasteParts:
    customer_ids: list[str]
    segment: np.ndarray  # (n, latent_dim) float64
    individual: np.ndarray  # (n, latent_dim) float64


def taste_parts(scale: Scale, seed: int) -> TasteParts:
    """The taste parts of the customers that ``generate_hm_layout`` writes for ``scale`` and ``seed``."""
    from dc003.data.synthetic import _rng
    from dc003.data.synthetic_catalogue import build_catalogue
    from dc003.data.synthetic_config import calendar, scale_preset
    from dc003.data.synthetic_customers import build_customers
    from dc003.data.synthetic_vocab import build_taxonomy

    cfg = scale_preset(scale)
    cal, tax = calendar(cfg), build_taxonomy()
    cat = build_catalogue(cfg, cal, tax, _rng(seed, "catalogue"))
    cust = build_customers(cfg, cal, _rng(seed, "customers"))
    segment, individual = replay_taste_parts(cfg, tax, cat, cust, seed)
    ids = [bytes(h).decode() for h in cust.hex_ids]
    return TasteParts(customer_ids=ids, segment=segment, individual=individual)


def embedding_probe(
    parts: TasteParts, customer_ids: list[str], embeddings: np.ndarray, bands: Mapping[str, np.ndarray]
) -> dict[str, Any]:
    """R^2 of both taste parts from ``embeddings`` (one row per customer of ``customer_ids``), and of the
    individual part within each of ``bands`` (name -> row mask, e.g. by purchases before the cutoff)
    against the same reference as the whole: the mean individual part of every probed customer."""
    position = {c: i for i, c in enumerate(parts.customer_ids)}
    unknown = [c for c in customer_ids if c not in position]
    if unknown:
        return {
            "skipped": f"{len(unknown)} of {len(customer_ids)} customers are not the generator's for this "
            f"scale and seed (e.g. {unknown[0]!r})"
        }
    who = np.array([position[c] for c in customer_ids], dtype=np.int64)
    x = np.asarray(embeddings, dtype=np.float64)
    individual = parts.individual[who]
    pred, r2 = ridge_probe(x, individual)
    centre = individual.mean(axis=0)
    by_band = {
        name: {
            "customers": int(mask.sum()),
            "r2": _r2(individual[mask], pred[mask], centre) if mask.any() else None,
        }
        for name, mask in bands.items()
    }
    return {
        "customers": int(who.size),
        "individual_r2": r2,
        "feature_r2": ridge_probe(x, parts.segment[who])[1],
        "individual_r2_by_band": by_band,
        "method": f"ridge with an intercept, {FOLDS}-fold out-of-fold predictions, the ridge chosen in each "
        f"fold by an inner {FOLDS}-fold cross-validation from {', '.join(f'{v:g}' for v in LAMBDAS)} times "
        "the inputs' mean sum of squares per column; R^2 over every latent dimension pooled",
    }
