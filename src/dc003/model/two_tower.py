"""``TwoTowerModel``: the contract's interface over the two towers.

``forward(user_features, item_features, labels)`` returns the loss in training mode (computed by the
phase objective the trainer attaches; the losses live in :mod:`dc003.model.losses`, apart from the
towers) and ``(user_embeddings, item_embeddings)`` in eval mode.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dc003.model.config import ModelConfig
from dc003.model.towers import ItemTower, UserTower


class UserFeatures(NamedTuple):
    categorical: torch.Tensor  # (B, n_cat) long
    numerical: torch.Tensor  # (B, n_num) float, raw values, NaN = missing
    history: torch.Tensor  # (B, L) long, most recent first
    history_padding: torch.Tensor  # (B, L) bool, True = no item


class ItemFeatures(NamedTuple):
    categorical: torch.Tensor  # (M, n_cat) long
    numerical: torch.Tensor  # (M, n_num) float
    text: torch.Tensor  # (M, n_text, 384) float

    def take(self, idx: torch.Tensor) -> ItemFeatures:
        return ItemFeatures(self.categorical[idx], self.numerical[idx], self.text[idx])


class Objective(Protocol):
    def __call__(
        self, user: torch.Tensor, item: torch.Tensor, labels: Mapping[str, torch.Tensor]
    ) -> torch.Tensor: ...


class TwoTowerModel(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.user_tower = UserTower(config.user_tower)
        self.item_tower = ItemTower(config.item_tower)
        self.temperature = config.temperature
        self.ema_decay = config.ema_decay
        self.objective: Objective | None = None
        # training only (never exported): the history encoder's pooled vector -> the embedding space, so
        # a phase can add its own objective on the history alone (``history_weight``): the purchases
        # must then predict the next one by themselves, beside the profile features
        self.history_head = nn.Linear(config.user_tower.sequence.d_model, config.embedding_dim)
        self.history_weight = 0.0

    def get_user_embeddings(self, user_features: UserFeatures) -> torch.Tensor:
        """From the catalogue's stored history tokens (:meth:`set_item_tokens` first)."""
        return self.user_tower(*user_features)

    def get_item_embeddings(self, item_features: ItemFeatures) -> torch.Tensor:
        return self.item_tower(*item_features)

    def item_token_features(self, item_features: ItemFeatures) -> tuple[torch.Tensor, torch.Tensor]:
        """``(item embeddings, history-token features)`` of items: the features are the embedding and the
        item tower's input representation side by side (:mod:`dc003.model.sequence`)."""
        item, inputs = self.item_tower.encode(*item_features)
        return item, torch.cat([item, inputs.to(item.dtype)], dim=-1)

    @torch.no_grad()
    def set_item_tokens(self, item_features: ItemFeatures, block: int = 4096) -> np.ndarray:
        """Store the history tokens of the whole catalogue (``item_features``: every item, as of the split
        the users are embedded for) for evaluation, export and serving; return the item embeddings."""
        n = item_features.categorical.shape[0]
        items, feats = [], []
        for s in range(0, n, block):
            idx = torch.arange(s, min(s + block, n), device=item_features.categorical.device)
            item, f = self.item_token_features(item_features.take(idx))
            items.append(item)
            feats.append(f)
        self.user_tower.history.set_item_tokens(torch.cat(feats))
        return torch.cat(items).float().cpu().numpy()

    def encode(
        self,
        user_features: UserFeatures,
        item_features: ItemFeatures,
        labels: Mapping[str, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One batch through both towers. ``labels["history_rows"]`` ``(B, L)`` (when present) points each
        history item at its row of ``item_features``: the history tokens then use the item tower's
        embeddings of this very pass, so the purchases' gradients reach the item tower too."""
        return self._encode(user_features, item_features, labels)[:2]

    def _encode(
        self,
        user_features: UserFeatures,
        item_features: ItemFeatures,
        labels: Mapping[str, torch.Tensor] | None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        rows = (labels or {}).get("history_rows")
        if rows is None:
            item, vectors = self.get_item_embeddings(item_features), None
        else:
            item, feats = self.item_token_features(item_features)
            vectors = feats[rows]
        user, pooled = self.user_tower.encode(*user_features, history_vectors=vectors)
        return user, item, pooled

    def forward(
        self,
        user_features: UserFeatures,
        item_features: ItemFeatures,
        labels: Mapping[str, torch.Tensor] | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        user, item, pooled = self._encode(user_features, item_features, labels)
        if not self.training:
            return user, item
        return self.training_loss(user, item, pooled, labels or {})

    def training_loss(
        self, user: torch.Tensor, item: torch.Tensor, pooled: torch.Tensor, labels: Mapping[str, torch.Tensor]
    ) -> torch.Tensor:
        """The phase objective on a batch's embeddings, + ``history_weight`` x the objective on the pooled
        history alone (on several processes: on the embeddings gathered from all of them)."""
        loss = self.compute_loss(user, item, labels)
        if self.history_weight:
            history = F.normalize(self.history_head(pooled), dim=-1)
            loss = loss + self.history_weight * self.compute_loss(history, item, labels)
        return loss

    def compute_loss(
        self, user: torch.Tensor, item: torch.Tensor, labels: Mapping[str, torch.Tensor]
    ) -> torch.Tensor:
        """``labels["user_rows"]`` / ``labels["item_rows"]`` (when present) map each example / item row to
        the row of ``user`` / ``item`` computed for it: a batch runs each tower once per distinct input
        (the examples of one basket share a user; popular items recur) and expands here."""
        if self.objective is None:
            raise RuntimeError("no phase objective attached: set model.objective before training")
        if "user_rows" in labels:
            user = user[labels["user_rows"]]
        if "item_rows" in labels:
            item = item[labels["item_rows"]]
        return self.objective(user, item, labels)

    def parameter_counts(self) -> dict[str, int]:
        return {
            "user_tower": sum(p.numel() for p in self.user_tower.parameters()),
            "item_tower": sum(p.numel() for p in self.item_tower.parameters()),
        }
