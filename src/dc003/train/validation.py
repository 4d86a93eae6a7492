"""Per-epoch validation on the val split: the phase's loss on val examples, and full-catalogue retrieval.

Retrieval: every user with a val purchase is queried once, with features as of the val cutoff and the
history before their first val purchase; the whole catalogue (features as of the val cutoff) is ranked
by cosine (:func:`dc003.scoring.ranking.top_k_scores`, no exclusion of bought items). Metrics come from
:mod:`dc003.scoring.metrics`: recall@50, NDCG@10, coverage@50 and the category mix of the top 50 (its
Jensen-Shannon divergence from the mix actually bought). The last-week popularity baseline is measured
on the same users and split, once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from dc003.model.two_tower import TwoTowerModel
from dc003.train.batches import ItemTable, user_features
from dc003.train.data import SPLIT_CODES, TrainingData
from dc003.train.recipes import Recipe

if TYPE_CHECKING:
    from dc003.params.deploy import ServingParams

K_RECALL, K_NDCG = 50, 10
_USER_BLOCK = 2048
_ITEM_BLOCK = 4096


@dataclass(frozen=True)
class RetrievalSet:
    split: str
    query_rows: np.ndarray  # first row of each evaluated user in the split
    users: np.ndarray
    truth: list[np.ndarray]


def retrieval_set(data: TrainingData, split: str, max_users: int = 0, seed: int = 0) -> RetrievalSet:
    """Every buyer of ``split`` with their first row and the items they bought; with ``max_users`` > 0 and
    more buyers than that, a uniform sample of that many (``seed``: the same users on every call)."""
    rows = np.flatnonzero(data.split == SPLIT_CODES[split])
    users, first = np.unique(data.user[rows], return_index=True)
    bounds = np.r_[first, rows.size]
    keep = np.arange(users.size)
    if 0 < max_users < users.size:
        keep = np.sort(np.random.default_rng(seed).choice(users.size, size=max_users, replace=False))
    truth = [np.unique(data.item[rows[bounds[i] : bounds[i + 1]]]) for i in keep]
    return RetrievalSet(split=split, query_rows=rows[first[keep]], users=users[keep], truth=truth)


@torch.no_grad()
def embed_items(model: TwoTowerModel, table: ItemTable) -> np.ndarray:
    feats = table.features
    n = feats.categorical.shape[0]
    out = [
        model.get_item_embeddings(
            feats.take(torch.arange(s, min(s + _ITEM_BLOCK, n), device=feats.text.device))
        )
        for s in range(0, n, _ITEM_BLOCK)
    ]
    return torch.cat(out).float().cpu().numpy()


def embed_users(
    model: TwoTowerModel,
    data: TrainingData,
    split: str,
    rows: np.ndarray,
    max_len: int,
    device: torch.device,
    table: ItemTable | None = None,
) -> np.ndarray:
    """User embeddings for interaction ``rows`` of ``split``: the history tokens of the catalogue as of the
    split (``table``, built here when not given) are stored first (:meth:`TwoTowerModel.set_item_tokens`,
    which also returns the item embeddings, for a caller that needs both)."""
    model.set_item_tokens((table or ItemTable.build(data, split, device)).features)
    return stored_token_user_embeddings(model, data, split, rows, max_len, device)


@torch.no_grad()
def stored_token_user_embeddings(
    model: TwoTowerModel, data: TrainingData, split: str, rows: np.ndarray, max_len: int, device: torch.device
) -> np.ndarray:
    """User embeddings for interaction ``rows`` from the history tokens the model holds now (stored for
    ``split``'s catalogue by :meth:`TwoTowerModel.set_item_tokens`)."""
    lengths = np.minimum(data.hist_end[rows] - data.hist_start[rows], max_len)
    order = np.argsort(lengths, kind="stable")  # similar lengths together: little padding
    out = np.empty((rows.size, model.config.embedding_dim), dtype=np.float32)
    for s in range(0, rows.size, _USER_BLOCK):
        pos = order[s : s + _USER_BLOCK]
        feats = user_features(data, data.features[split], rows[pos], max_len, device)
        out[pos] = model.get_user_embeddings(feats).float().cpu().numpy()
    return out


@torch.no_grad()
def served_catalogue(
    model: TwoTowerModel, data: TrainingData, split: str, serving: ServingParams
) -> tuple[np.ndarray, np.ndarray]:
    """``(item embeddings, raw numerical inputs)`` of the whole catalogue as of ``split``'s cutoff as the
    export serves it and the evaluation ranks it: never-sold items' inputs per params ``serving``
    (:func:`dc003.scoring.serving_score.served_item_numerical`). Stores the model's history tokens."""
    from dc003.model.two_tower import ItemFeatures
    from dc003.scoring.serving_score import served_item_numerical

    model.eval()
    cat, num = data.item_arrays(split)
    num = served_item_numerical(num, model.config, serving, data.never_sold(split))
    device = next(model.parameters()).device
    features = ItemFeatures(
        categorical=torch.from_numpy(cat).to(device),
        numerical=torch.from_numpy(num).to(device),
        text=torch.from_numpy(data.item_text).to(device),
    )
    return model.set_item_tokens(features), num


def retrieval_metrics(
    model: TwoTowerModel,
    data: TrainingData,
    rset: RetrievalSet,
    table: ItemTable,
    max_len: int,
    device: torch.device,
) -> dict[str, float]:
    from dc003.scoring.metrics import (
        category_distribution,
        coverage_at_k,
        distribution_distance,
        ndcg_at_k,
        recall_at_k,
    )
    from dc003.scoring.ranking import top_k_scores

    was_training = model.training
    model.eval()
    try:
        items = model.set_item_tokens(table.features)
        users = stored_token_user_embeddings(model, data, rset.split, rset.query_rows, max_len, device)
    finally:
        model.train(was_training)
    top = top_k_scores(users, items, K_RECALL)
    n_cat = len(data.category_names)
    recommended = category_distribution(top, data.item_category, n_cat)
    bought = (
        category_distribution(np.concatenate(rset.truth), data.item_category, n_cat) if rset.truth else None
    )
    out = {
        "recall_50": _nanmean(recall_at_k(top, rset.truth, K_RECALL)),
        "ndcg_10": _nanmean(ndcg_at_k(top, rset.truth, K_NDCG)),
        "coverage_50": coverage_at_k(top, data.n_items, K_RECALL),
    }
    if bought is not None:
        out["category_js"] = distribution_distance(recommended, bought)["jensen_shannon"]
    for name, share in zip(data.category_names, recommended, strict=True):
        out[f"category_share/{_slug(name)}"] = float(share)
    return out


def popularity_baseline(data: TrainingData, rset: RetrievalSet) -> dict[str, float]:
    """Recall@50 / NDCG@10 of the last-week most-popular list on the same users and split."""
    from dc003.scoring.baselines import popularity_last_week
    from dc003.scoring.metrics import ndcg_at_k, recall_at_k

    top = popularity_last_week(
        data.user,
        data.item,
        data.day,
        n_items=data.n_items,
        cutoff_day=data.cutoffs[rset.split],
        users=rset.users,
        k=K_RECALL,
    )
    return {
        "recall_50": _nanmean(recall_at_k(top, rset.truth, K_RECALL)),
        "ndcg_10": _nanmean(ndcg_at_k(top, rset.truth, K_NDCG)),
    }


@torch.no_grad()
def validation_loss(model: TwoTowerModel, recipe: Recipe, batch_size: int, seed: int) -> float:
    """The phase objective on the val examples, in eval mode (no dropout, batch-norm running stats)."""
    n = recipe.examples["val"].size
    if n == 0:
        return math.nan
    rng = np.random.default_rng([seed, 7919])
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    try:
        for pos in recipe.order("val", batch_size, rng):
            users, items, labels = recipe.batch("val", pos, rng)
            loss = model.compute_loss(*model.encode(users, items, labels), labels)
            total += float(loss) * pos.size
            count += pos.size
    finally:
        model.train(was_training)
    return total / max(count, 1)


def _nanmean(values: np.ndarray) -> float:
    finite = values[~np.isnan(values)]
    return float(finite.mean()) if finite.size else math.nan


def _slug(name: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in name).strip("_").lower() or "unknown"
