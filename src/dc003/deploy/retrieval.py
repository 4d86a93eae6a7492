"""Retrieval over the catalogue with FAISS: inner product on L2-normalised vectors, i.e. the cosine the
model trains with (the temperature scales every score alike and cannot change an order), plus an optional
popularity prior (params ``serving``): the item vectors carry ``log(popularity + floor)`` as one more
coordinate and the query carries the prior's weight there, so one inner product gives
``cosine + weight x log(popularity + floor)`` and the flat index stays exact (a last coordinate evens
the item norms out for HNSW; the query is 0 there). The evaluation ranks with the same
vectors (:func:`index_vectors`, :func:`query_vectors`), so what is evaluated is what is served.

Exact (``IndexFlatIP``) by default; HNSW is the approximate option, its recall@k against exact measured
by :func:`ann_recall`. Nothing here imports torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from dc003.io import atomic_path

if TYPE_CHECKING:
    import faiss


def normalised(x: np.ndarray) -> np.ndarray:
    out = np.array(x, dtype=np.float32, order="C", copy=True)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.maximum(norms, 1e-12)


def popularity_prior(popularity: np.ndarray, floor: float) -> np.ndarray:
    """``log(popularity + floor)`` per item (``popularity`` is DC-002's popularity_score in 0..1; NaN = 0)."""
    pop = np.nan_to_num(np.asarray(popularity, dtype=np.float64), nan=0.0)
    return np.log(np.clip(pop, 0.0, None) + floor).astype(np.float32)


POPULARITY = "popularity_score"  # the DC-003 item feature the prior reads


def serving_prior(
    numerical: np.ndarray, names: Sequence[str], temperature: float, strength: float, floor: float
) -> tuple[np.ndarray | None, float | None]:
    """``(prior per item, query weight)`` from the item tower's raw numerical inputs (columns ``names``);
    ``(None, None)`` when ``strength`` is 0 (the plain cosine)."""
    weight = prior_weight(strength, temperature)
    if weight is None:
        return None, None
    if POPULARITY not in names:
        raise ValueError(
            f"the popularity prior reads the item feature {POPULARITY!r}; the item tower has {list(names)}"
        )
    return popularity_prior(np.asarray(numerical)[:, list(names).index(POPULARITY)], floor), weight


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


def flat_index(items: np.ndarray, prior: np.ndarray | None = None) -> faiss.Index:
    import faiss

    vecs = index_vectors(items, prior)
    index = faiss.IndexFlatIP(vecs.shape[1])
    index.add(vecs)
    return index


def hnsw_index(
    items: np.ndarray, m: int, ef_search: int, ef_construction: int = 80, prior: np.ndarray | None = None
) -> faiss.Index:
    import faiss

    vecs = index_vectors(items, prior)
    index = faiss.IndexHNSWFlat(vecs.shape[1], m, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = ef_construction
    index.hnsw.efSearch = ef_search
    index.add(vecs)
    return index


def search(
    index: faiss.Index, queries: np.ndarray, k: int, weight: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``(scores, item rows)`` of the top ``k`` per query (rows ``-1`` where the catalogue is smaller).

    ``weight`` is the prior's weight; an index built with a prior needs one (and one without, none)."""
    vecs = query_vectors(queries, weight)
    if vecs.shape[1] != index.d:
        raise ValueError(
            f"query width {vecs.shape[1]} does not match the index ({index.d}): an index built with a "
            "popularity prior is searched with its weight, one without it with none"
        )
    scores, ids = index.search(vecs, min(k, index.ntotal))
    return scores, ids


def ann_recall(exact: np.ndarray, approx: np.ndarray) -> float:
    """Mean share of each query's exact top-k found in the approximate top-k."""
    hits = [
        np.intersect1d(e[e >= 0], a[a >= 0]).size / max(int((e >= 0).sum()), 1)
        for e, a in zip(exact, approx, strict=True)
    ]
    return float(np.mean(hits)) if hits else float("nan")


def write_index(index: faiss.Index, path: Path) -> None:
    import faiss

    with atomic_path(path) as tmp:
        faiss.write_index(index, str(tmp))


def read_index(path: Path) -> faiss.Index:
    import faiss

    return faiss.read_index(str(path))
