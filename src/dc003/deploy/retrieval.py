"""Retrieval over the catalogue with FAISS: an index of the serving score's vectors
(:mod:`dc003.scoring.serving_score`: L2-normalised embeddings, plus the popularity prior's coordinates when
params ``serving`` sets one), searched by inner product, with the repurchase bonus merged into the top k.

Exact (``IndexFlatIP``) by default; HNSW is the approximate option, its recall@k against exact measured
by :func:`ann_recall`. Nothing here imports torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from dc003.io import atomic_path
from dc003.scoring.serving_score import index_vectors, query_vectors

if TYPE_CHECKING:
    import faiss
    import scipy.sparse as sp


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
    index: faiss.Index,
    queries: np.ndarray,
    k: int,
    weight: float | None = None,
    bonus: sp.csr_matrix | None = None,
    tail_weight: float | None = None,
    head_k: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """``(scores, item rows)`` of the top ``k`` per query (rows ``-1`` where the catalogue is smaller).

    ``weight`` is the prior's weight; an index built with a prior needs one (and one without, none).
    ``bonus`` (:func:`dc003.scoring.serving_score.repurchase_bonus`, one row per query) is added to the
    scores of its items: the index gives the top ``k`` without it, the bonus items are scored from the
    index's own vectors and merged in (exact: a bonus only raises an item, so nothing outside both sets can
    reach the top ``k``). Order: higher score, then lower item row, as
    :func:`dc003.scoring.ranking.top_k_scores` ranks. ``tail_weight`` (params ``serving.tail_prior``):
    the first ``head_k`` items as above, the rest searched with that prior weight instead
    (:func:`dc003.scoring.serving_score.blend_lists`: the evaluation's
    :func:`~dc003.scoring.serving_score.served_top_k`), each with the score that ranked it."""
    from dc003.scoring.serving_score import blend_lists

    vecs = query_vectors(queries, weight)
    if vecs.shape[1] != index.d:
        raise ValueError(
            f"query width {vecs.shape[1]} does not match the index ({index.d}): an index built with a "
            "popularity prior is searched with its weight, one without it with none"
        )
    scores, ids = _search(index, vecs, k, bonus)
    if tail_weight is None or weight is None or head_k >= ids.shape[1]:
        return scores, ids
    tail_scores, tail_ids = _search(index, query_vectors(queries, tail_weight), k, bonus)
    blended, blended_scores = blend_lists(ids, tail_ids, head_k, scores, tail_scores)
    assert blended_scores is not None
    return blended_scores, blended


def _search(
    index: faiss.Index, vecs: np.ndarray, k: int, bonus: sp.csr_matrix | None
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`search` for query vectors as the index holds them (one prior weight)."""
    kk = min(k, index.ntotal)
    scores, ids = index.search(vecs, kk)
    if bonus is None or bonus.nnz == 0:
        return scores, ids
    out_s = np.full((vecs.shape[0], kk), -np.inf, dtype=np.float32)
    out_i = np.full((vecs.shape[0], kk), -1, dtype=np.int64)
    for r in range(vecs.shape[0]):
        lo, hi = bonus.indptr[r], bonus.indptr[r + 1]
        extra = bonus.indices[lo:hi].astype(np.int64)
        found = ids[r][ids[r] >= 0]
        plain = ~np.isin(found, extra)
        extra_s = index.reconstruct_batch(extra) @ vecs[r] + bonus.data[lo:hi]
        cand_i = np.concatenate([found[plain], extra])
        cand_s = np.concatenate([scores[r][: found.size][plain], extra_s.astype(np.float32)])
        order = np.lexsort((cand_i, -cand_s))[:kk]
        out_s[r, : order.size], out_i[r, : order.size] = cand_s[order], cand_i[order]
    return out_s, out_i


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
