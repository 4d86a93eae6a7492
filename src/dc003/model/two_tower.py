"""``TwoTowerModel``: the contract's interface over the two towers.

``forward(user_features, item_features, labels)`` returns the loss in training mode (computed by the
phase objective the trainer attaches; the losses live in :mod:`dc003.model.losses`, apart from the
towers) and ``(user_embeddings, item_embeddings)`` in eval mode.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple, Protocol

import torch
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

    def get_user_embeddings(self, user_features: UserFeatures) -> torch.Tensor:
        return self.user_tower(*user_features)

    def get_item_embeddings(self, item_features: ItemFeatures) -> torch.Tensor:
        return self.item_tower(*item_features)

    def forward(
        self,
        user_features: UserFeatures,
        item_features: ItemFeatures,
        labels: Mapping[str, torch.Tensor] | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        user = self.get_user_embeddings(user_features)
        item = self.get_item_embeddings(item_features)
        if self.training:
            return self.compute_loss(user, item, labels or {})
        return user, item

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
