"""Retrieval over the catalogue with FAISS: inner product on L2-normalised vectors, i.e. the cosine the
model trains with (the temperature scales every score alike and cannot change an order).

Exact (``IndexFlatIP``) by default; HNSW is the approximate option, its recall@k against exact measured
by :func:`ann_recall`. Nothing here imports torch.
"""

from __future__ import annotations

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


def flat_index(items: np.ndarray) -> faiss.Index:
    import faiss

    vecs = normalised(items)
    index = faiss.IndexFlatIP(vecs.shape[1])
    index.add(vecs)
    return index


def hnsw_index(items: np.ndarray, m: int, ef_search: int, ef_construction: int = 80) -> faiss.Index:
    import faiss

    vecs = normalised(items)
    index = faiss.IndexHNSWFlat(vecs.shape[1], m, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = ef_construction
    index.hnsw.efSearch = ef_search
    index.add(vecs)
    return index


def search(index: faiss.Index, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """``(scores, item rows)`` of the top ``k`` per query (rows ``-1`` where the catalogue is smaller)."""
    scores, ids = index.search(normalised(queries), min(k, index.ntotal))
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
