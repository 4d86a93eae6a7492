"""The serving score, as the vectors the index holds: inner product on L2-normalised vectors, i.e. the cosine
the model trains with (the temperature scales every score alike and cannot change an order), plus an
optional popularity prior (params ``serving``): the item vectors carry ``log(popularity + floor)`` as one more
coordinate and the query carries the prior's weight there, so one inner product gives
``cosine + weight x log(popularity + floor)`` and a flat index stays exact (a last coordinate evens the item
norms out for HNSW; the query is 0 there); plus the repurchase bonus over each user's history
(:func:`repurchase_bonus`). The evaluation ranks with these vectors and :mod:`dc003.deploy.retrieval`
indexes them, so what is evaluated is what is served. numpy / scipy only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import scipy.sparse as sp

    from dc003.model.config import ModelConfig
    from dc003.params.deploy import ServingParams


def normalised(x: np.ndarray) -> np.ndarray:
    out = np.array(x, dtype=np.float32, order="C", copy=True)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.maximum(norms, 1e-12)


def imputed_popularity(
    popularity: np.ndarray, never_sold: np.ndarray | None = None, new_item_quantile: float | None = None
) -> np.ndarray:
    """DC-002's popularity_score per item (0..1; NaN = 0) with, when ``new_item_quantile`` is set, each item
    never sold before the cutoff (``never_sold``) at that quantile of the popularity of the items sold in
    the window: it has no sales to count, not a measured popularity of zero."""
    pop = np.clip(np.nan_to_num(np.asarray(popularity, dtype=np.float64), nan=0.0), 0.0, None)
    if new_item_quantile is not None and never_sold is not None:
        sold = pop[(pop > 0) & ~never_sold]
        if sold.size:
            pop = np.where(never_sold, np.quantile(sold, new_item_quantile), pop)
    return pop


def popularity_prior(
    popularity: np.ndarray,
    floor: float,
    never_sold: np.ndarray | None = None,
    new_item_quantile: float | None = None,
) -> np.ndarray:
    """``log(popularity + floor)`` per item, never-sold items as :func:`imputed_popularity` sets them
    (without ``new_item_quantile``, ``log(floor)`` ranks them below everything)."""
    return np.log(imputed_popularity(popularity, never_sold, new_item_quantile) + floor).astype(np.float32)


POPULARITY = "popularity_score"  # the DC-003 item feature the prior reads


def serving_prior(
    numerical: np.ndarray,
    names: Sequence[str],
    temperature: float,
    strength: float,
    floor: float,
    never_sold: np.ndarray | None = None,
    new_item_quantile: float | None = None,
) -> tuple[np.ndarray | None, float | None]:
    """``(prior per item, query weight)`` from the item tower's raw numerical inputs (columns ``names``);
    ``(None, None)`` when ``strength`` is 0 (the plain cosine). ``never_sold`` / ``new_item_quantile``:
    :func:`popularity_prior`."""
    weight = prior_weight(strength, temperature)
    if weight is None:
        return None, None
    if POPULARITY not in names:
        raise ValueError(
            f"the popularity prior reads the item feature {POPULARITY!r}; the item tower has {list(names)}"
        )
    pop = np.asarray(numerical)[:, list(names).index(POPULARITY)]
    return popularity_prior(pop, floor, never_sold, new_item_quantile), weight


def configured_prior(
    numerical: np.ndarray, config: ModelConfig, serving: ServingParams, never_sold: np.ndarray | None
) -> tuple[np.ndarray | None, float | None]:
    """:func:`serving_prior` as params ``serving`` sets it, for a model (``config``: its item tower's
    numerical inputs, the columns of ``numerical``, and its temperature); the evaluation and the export
    both take it from here."""
    return serving_prior(
        numerical, [n.name for n in config.item_tower.numerical], config.temperature,
        serving.popularity_prior, serving.prior_floor, never_sold, serving.new_item_quantile,
    )  # fmt: skip


def served_item_numerical(
    numerical: np.ndarray, config: ModelConfig, serving: ServingParams, never_sold: np.ndarray | None
) -> np.ndarray:
    """The item tower's raw numerical inputs as served (a copy): with ``serving.new_item_quantile``, a
    never-sold item's popularity_score input is the same imputed value its prior uses, so the tower too
    sees a new release as an item of that popularity rather than as one nobody buys. The evaluation
    and the export embed the catalogue from here."""
    out = np.array(numerical, dtype=np.float32, copy=True)
    names = [n.name for n in config.item_tower.numerical]
    if serving.new_item_quantile is None or never_sold is None or POPULARITY not in names:
        return out
    j = names.index(POPULARITY)
    out[never_sold, j] = imputed_popularity(out[:, j], never_sold, serving.new_item_quantile)[never_sold]
    return out


def describe(serving: ServingParams, temperature: float) -> str:
    """The serving score in words (the evaluation's setup, the model card and the exported config)."""
    return (
        "cosine: inner product of the L2-normalised tower outputs (as in training and serving)"
        + (
            f", plus {serving.popularity_prior} x temperature {temperature} x "
            f"log(popularity_score + {serving.prior_floor}) (params serving: the popularity prior, as served"
            + (
                f"; never-sold items at the {serving.new_item_quantile:g} quantile of the sold items' "
                "popularity_score, in the prior and in the item tower's input)"
                if serving.new_item_quantile is not None
                else ")"
            )
            if serving.popularity_prior
            else ""
        )
        + (
            f", plus {serving.repurchase_boost:g} x temperature x log(1 + times bought) for the items in the "
            "user's history (the repurchase boost)"
            if serving.repurchase_boost
            else ""
        )
        + (
            f"; after the first {serving.head_k} items the list is ranked with a popularity prior of "
            f"{serving.tail_prior:g} instead (the tail prior)"
            if tail_weight(serving, temperature) is not None
            else ""
        )
    )


def tail_weight(serving: ServingParams, temperature: float) -> float | None:
    """The query's prior weight for the served list's tail (``serving.tail_prior``); ``None``: one ranking
    (no tail prior, or no popularity prior at all)."""
    if serving.tail_prior is None or prior_weight(serving.popularity_prior, temperature) is None:
        return None
    return serving.tail_prior * temperature


def with_prior_weight(queries: np.ndarray, weight: float) -> np.ndarray:
    """Query vectors (:func:`query_vectors` with a prior) with ``weight`` on the prior coordinate."""
    out = np.array(queries, dtype=np.float32, copy=True)
    out[:, -2] = weight
    return out


def blend_lists(
    head: np.ndarray,
    tail: np.ndarray,
    head_k: int,
    head_scores: np.ndarray | None = None,
    tail_scores: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """``(items, scores)`` per row: the first ``head_k`` of ``head``, then ``tail``'s items that are not
    among them, in ``tail``'s order, to ``head``'s width (``-1`` pads stay last). Each score is the one
    that ranked the item there. ``tail`` must be as wide as ``head``: at most ``head_k`` of it repeat."""
    k = head.shape[1]
    if tail.shape != head.shape:
        raise ValueError(f"tail lists {tail.shape} must match the head lists {head.shape}")
    if head_k >= k:
        return head, head_scores
    top = head[:, :head_k]
    repeat = (tail[:, :, None] == top[:, None, :]).any(axis=2) & (tail >= 0)
    order = np.argsort(repeat, axis=1, kind="stable")[:, : k - head_k]  # first the new items, in order
    items = np.concatenate([top, np.take_along_axis(tail, order, axis=1)], axis=1)
    if head_scores is None or tail_scores is None:
        return items, None
    scores = np.concatenate([head_scores[:, :head_k], np.take_along_axis(tail_scores, order, axis=1)], axis=1)
    return items, scores


def served_top_k(
    queries: np.ndarray,
    items: np.ndarray,
    k: int,
    serving: ServingParams,
    temperature: float,
    *,
    exclude: sp.spmatrix | sp.sparray | None = None,
    bonus: sp.csr_matrix | None = None,
) -> np.ndarray:
    """The served top ``k`` over the whole catalogue (``queries`` / ``items``: :func:`query_vectors` /
    :func:`index_vectors`): one ranking by inner product plus ``bonus``, or with ``serving.tail_prior``
    its first ``head_k`` and then the tail's ranking (:func:`blend_lists`). The evaluation ranks with this;
    :func:`dc003.deploy.retrieval.search` serves the same lists from FAISS."""
    from dc003.scoring.ranking import top_k_scores

    top = top_k_scores(queries, items, k, exclude=exclude, bonus=bonus)
    weight = tail_weight(serving, temperature)
    if weight is None or serving.head_k >= top.shape[1]:
        return top
    tail = top_k_scores(with_prior_weight(queries, weight), items, k, exclude=exclude, bonus=bonus)
    return blend_lists(top, tail, serving.head_k)[0]


def repurchase_bonus(
    history: np.ndarray, lengths: np.ndarray, n_items: int, strength: float, temperature: float
) -> sp.csr_matrix | None:
    """``(users, n_items)`` score bonus of the items each user bought before: ``strength x temperature x
    log(1 + times bought)`` among the user's last purchases (``history[:, :lengths]``); ``None`` when
    ``strength`` is 0. In logit units (cosine / temperature) it is ``strength x log(1 + count)``: one user
    vector cannot sit near every past purchase, so the serving score lifts them explicitly."""
    import scipy.sparse as sp

    if not strength:
        return None
    hist = np.asarray(history)
    lengths = np.asarray(lengths, dtype=np.int64)
    n_users = hist.shape[0]
    width = hist.shape[1] if hist.ndim == 2 else 0
    keep = np.arange(width)[None, :] < lengths[:, None]
    rows = np.broadcast_to(np.arange(n_users)[:, None], (n_users, width))[keep]
    cols = hist[keep].astype(np.int64)
    inside = (cols >= 0) & (cols < n_items)
    counts = sp.csr_matrix(
        (np.ones(int(inside.sum())), (rows[inside], cols[inside])), shape=(n_users, n_items)
    )
    counts.sum_duplicates()
    counts.data = (strength * temperature * np.log1p(counts.data)).astype(np.float32)
    return counts


def prior_weight(popularity_prior: float, temperature: float) -> float | None:
    """The query's weight on the prior coordinate (``None``: no prior, plain cosine). The towers' logits are
    cosine / temperature, so ``prior x log p`` added to the logits is ``prior x temperature x log p`` here."""
    return popularity_prior * temperature if popularity_prior else None


def index_vectors(items: np.ndarray, prior: np.ndarray | None = None) -> np.ndarray:
    """L2-normalised item vectors; with a prior, two more coordinates: the prior, and
    ``sqrt(max_norm^2 - norm^2)`` so that every row has the same norm. The query is 0 on the last one
    (:func:`query_vectors`), so it changes no score; it only keeps graph indexes (HNSW), which search
    inner products well only among vectors of one norm, as accurate as on the plain cosine."""
    vecs = normalised(items)
    if prior is None:
        return vecs
    prior = np.asarray(prior, dtype=np.float32).reshape(-1, 1)
    if prior.shape[0] != vecs.shape[0]:
        raise ValueError(f"prior has {prior.shape[0]} rows for {vecs.shape[0]} items")
    sq = (vecs.astype(np.float64) ** 2).sum(1, keepdims=True) + prior.astype(np.float64) ** 2
    pad = np.sqrt(np.maximum(sq.max(initial=0.0) - sq, 0.0)).astype(np.float32)
    return np.ascontiguousarray(np.hstack([vecs, prior, pad]))


def query_vectors(queries: np.ndarray, weight: float | None = None) -> np.ndarray:
    """L2-normalised queries; with a prior, its weight and a 0 as two more coordinates."""
    vecs = normalised(queries)
    if weight is None:
        return vecs
    extra = np.zeros((vecs.shape[0], 2), dtype=np.float32)
    extra[:, 0] = weight
    return np.ascontiguousarray(np.hstack([vecs, extra]))
