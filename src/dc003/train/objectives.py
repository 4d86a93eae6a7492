"""Phase objectives: the losses of :mod:`dc003.model.losses` applied to one batch's embeddings.

Item embeddings of a batch are laid out as ``[the B positives, then extra items]``; ``labels`` says what
the extra items are:

- ``users`` (B,): each row's user; ``items`` (M,): catalogue id of each item row;
- ``negatives`` (B, K): per-row negatives as indices into the item rows, ``-1`` = none;
- ``n_shared`` (scalar): the first ``n_shared`` item rows (positives + shared random negatives) are
  candidates of every row (in-batch negatives);
- ``log_q`` (M,): log sampling probability of each item row (popularity correction);
- ``category`` (M,): category of each item row;
- ``teacher`` (B, k): the teacher's L2-normalised factors of each row's positive item (distillation).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch

from dc003.model.losses import (
    accidental_hits,
    bpr_loss,
    category_alignment_loss,
    consistency_loss,
    popularity_corrected_logits,
    relational_distillation_loss,
    smoothed_cross_entropy,
)

Labels = Mapping[str, torch.Tensor]


def _row_scores(user: torch.Tensor, item: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """``(B, K)`` cosine of each row's user with the item rows ``idx`` (``-1`` read as row 0; mask later)."""
    return torch.einsum("bd,bkd->bk", user, item[idx.clamp(min=0)])


@dataclass(frozen=True)
class BprObjective:
    margin: float

    def __call__(self, user: torch.Tensor, item: torch.Tensor, labels: Labels) -> torch.Tensor:
        b = user.shape[0]
        neg = labels["negatives"]
        pos_scores = (user * item[:b]).sum(-1)
        neg_scores = _row_scores(user, item, neg)
        items = labels["items"]
        # a random negative that happens to be the positive item is not a negative
        valid = (neg >= 0) & (items[neg.clamp(min=0)] != items[:b, None])
        return bpr_loss(pos_scores, neg_scores, self.margin, valid)


@dataclass(frozen=True)
class InfoNceObjective:
    temperature: float
    label_smoothing: float
    popularity_weight: float
    # + distillation_weight x relational distillation of the positives' item embeddings from the
    # ``teacher`` label (absent label or weight 0: InfoNCE alone)
    distillation_weight: float = 0.0
    distillation_temperature: float = 0.1

    def __call__(self, user: torch.Tensor, item: torch.Tensor, labels: Labels) -> torch.Tensor:
        b = user.shape[0]
        n_shared = int(labels["n_shared"])
        users, items, log_q = labels["users"], labels["items"], labels["log_q"]
        target = torch.arange(b, device=user.device)
        scores = user @ item[:n_shared].T
        logits = popularity_corrected_logits(
            scores, self.temperature, log_q[:n_shared], self.popularity_weight, target
        )
        valid = ~accidental_hits(users, items[:b], items[:n_shared], target)
        if "negatives" in labels:
            neg = labels["negatives"]
            row_logits = _row_scores(user, item, neg) / self.temperature
            if self.popularity_weight:
                row_logits = row_logits - self.popularity_weight * log_q[neg.clamp(min=0)]
            row_valid = (neg >= 0) & ~accidental_hits(users, items[:b], items[neg.clamp(min=0)])
            logits = torch.cat([logits, row_logits], dim=1)
            valid = torch.cat([valid, row_valid], dim=1)
        loss = smoothed_cross_entropy(logits, target, valid, self.label_smoothing)
        if self.distillation_weight and "teacher" in labels:
            distill = relational_distillation_loss(item[:b], labels["teacher"], self.distillation_temperature)
            loss = loss + self.distillation_weight * distill
        return loss


@dataclass(frozen=True)
class CompositeObjective:
    """Phase 3: ``infonce_weight * InfoNCE + category_weight * category alignment``."""

    infonce: InfoNceObjective
    infonce_weight: float
    category_weight: float
    category_temperature: float

    def __call__(self, user: torch.Tensor, item: torch.Tensor, labels: Labels) -> torch.Tensor:
        b = user.shape[0]
        main = self.infonce(user, item, labels)
        align = category_alignment_loss(user, item[:b], labels["category"][:b], self.category_temperature)
        return self.infonce_weight * main + self.category_weight * align


@dataclass(frozen=True)
class ConsistencyObjective:
    temperature: float

    def __call__(self, user: torch.Tensor, item: torch.Tensor, labels: Labels) -> torch.Tensor:
        return consistency_loss(user, item[: user.shape[0]], self.temperature)
