"""ONNX vs PyTorch: per-row cosine of the embeddings and the recall@50 each ranking reaches (numpy only).

The contract's bounds (``model_validation.deployment_validation[numerical_stability]``: min_cosine,
max_recall_50_diff) are passed in; the result records them with the measured values.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from dc003.contracts.base import Declared

K = 50


class Parity(Declared):
    min_cosine_users: float
    min_cosine_items: float
    min_cosine: float
    max_abs_diff: float
    recall_50_pytorch: float
    recall_50_onnx: float
    recall_50_abs_diff: float
    bound_min_cosine: float
    bound_max_recall_50_diff: float
    ok: bool


def row_cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a64, b64 = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    num = (a64 * b64).sum(axis=1)
    den = np.linalg.norm(a64, axis=1) * np.linalg.norm(b64, axis=1)
    return np.where(den > 0, num / np.maximum(den, 1e-300), 0.0)


def recall_50(users: np.ndarray, items: np.ndarray, truth: Sequence[np.ndarray]) -> float:
    from dc003.scoring.metrics import recall_at_k
    from dc003.scoring.ranking import top_k_scores

    values = recall_at_k(top_k_scores(users, items, K), truth, K)
    finite = values[~np.isnan(values)]
    return float(finite.mean()) if finite.size else float("nan")


def compare(
    reference: tuple[np.ndarray, np.ndarray],
    exported: tuple[np.ndarray, np.ndarray],
    truth: Sequence[np.ndarray],
    *,
    min_cosine: float,
    max_recall_diff: float,
) -> Parity:
    """``reference`` / ``exported`` are ``(user embeddings, item embeddings)`` of the same inputs."""
    (ru, ri), (eu, ei) = reference, exported
    if ru.shape != eu.shape or ri.shape != ei.shape:
        raise ValueError(f"shape mismatch: {ru.shape}/{eu.shape} users, {ri.shape}/{ei.shape} items")
    cos_u, cos_i = row_cosine(ru, eu), row_cosine(ri, ei)
    # a NaN row counts as the worst possible cosine, never as a pass
    min_u = float(np.nan_to_num(cos_u, nan=-1.0).min(initial=1.0))
    min_i = float(np.nan_to_num(cos_i, nan=-1.0).min(initial=1.0))
    r_ref = recall_50(ru, ri, truth)
    r_exp = recall_50(np.nan_to_num(eu), np.nan_to_num(ei), truth)
    diff = abs(r_ref - r_exp)
    worst = min(min_u, min_i)
    max_abs = max(float(np.abs(ru - eu).max(initial=0.0)), float(np.abs(ri - ei).max(initial=0.0)))
    return Parity(
        min_cosine_users=min_u,
        min_cosine_items=min_i,
        min_cosine=worst,
        max_abs_diff=max_abs if np.isfinite(max_abs) else float("inf"),
        recall_50_pytorch=r_ref,
        recall_50_onnx=r_exp,
        recall_50_abs_diff=diff,
        bound_min_cosine=min_cosine,
        bound_max_recall_50_diff=max_recall_diff,
        ok=bool(worst >= min_cosine and diff <= max_recall_diff),
    )
