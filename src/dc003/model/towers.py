"""The two towers, each a module with plain tensor inputs so it exports to ONNX on its own.

User tower inputs: categorical indices ``(B, 4)``, raw numerical values ``(B, 4)`` (NaN = missing), history
item indices ``(B, L)`` most recent first and its padding mask ``(B, L)`` (True = no item); each history
item enters as its item-tower embedding (:mod:`dc003.model.sequence`).
Item tower inputs: categorical indices ``(B, 7)``, raw numerical values ``(B, 2)``, frozen MiniLM text
vectors ``(B, 2, 384)`` (from the text_embed stage; the encoder itself is never part of the tower).
Both return L2-normalised ``(B, embedding_dim)`` embeddings: cosine is the one similarity everywhere.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dc003.model.config import ItemTowerConfig, UserTowerConfig
from dc003.model.layers import CategoricalEncoder, NumericEncoder, dense_stack
from dc003.model.sequence import HistoryEncoder

RESIDUAL_INIT = 1.0


def linear_skip(enabled: bool, width: int, out: int) -> nn.Linear | None:
    """The output-side linear skip (params model.user_linear_skip / item_linear_skip): a bias-free map of the
    tower's input representation added to the projection head's output. Zero at init, so training starts
    from the plain tower and the skip grows only as far as it helps."""
    if not enabled:
        return None
    skip = nn.Linear(width, out, bias=False)
    nn.init.zeros_(skip.weight)
    return skip


class UserTower(nn.Module):
    def __init__(self, config: UserTowerConfig) -> None:
        super().__init__()
        # the first dense layer's batch norm cancels any constant offset of the input features, so the
        # input-side projections carry no bias (it would be a parameter with an always-zero gradient)
        bias = not config.dense[0].batch_norm
        self.categorical = CategoricalEncoder(config.categorical)
        self.numerical = NumericEncoder(config.numerical, bias=bias)
        self.history = HistoryEncoder(config.sequence, output_bias=bias)
        width = self.categorical.width + self.numerical.width + self.history.width
        assert width == config.input_width()
        self.dense = dense_stack(width, config.dense)
        self.projection = dense_stack(config.dense[-1].units, config.projection)
        self.skip = linear_skip(config.linear_skip, width, config.projection[-1].units)
        # the skip path from the purchases (params model.history_residual): its weight is learned
        self.residual_scale = (
            nn.Parameter(torch.tensor(float(RESIDUAL_INIT))) if config.sequence.residual_dim else None
        )

    def forward(
        self,
        categorical: torch.Tensor,
        numerical: torch.Tensor,
        history: torch.Tensor,
        history_padding: torch.Tensor,
    ) -> torch.Tensor:
        """The user embedding from the catalogue's stored history tokens (eval, export, serving)."""
        return self.encode(categorical, numerical, history, history_padding)[0]

    def encode(
        self,
        categorical: torch.Tensor,
        numerical: torch.Tensor,
        history: torch.Tensor,
        history_padding: torch.Tensor,
        history_vectors: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(user embedding, pooled history vector)``: the second is the history encoder's output.
        ``history_vectors``: the history items' token features from the item tower in the same forward pass
        (training); ``None`` reads the catalogue's stored tokens."""
        pooled = self.history(history, history_padding, history_vectors)
        x = torch.cat([self.categorical(categorical), self.numerical(numerical), pooled], dim=-1)
        out = self.projection(self.dense(x))
        if self.skip is not None:
            out = out + self.skip(x)
        if self.residual_scale is not None:
            out = out + self.residual_scale * self.history.residual(history, history_padding, history_vectors)
        return F.normalize(out, dim=-1), pooled


class ItemTower(nn.Module):
    def __init__(self, config: ItemTowerConfig) -> None:
        super().__init__()
        bias = not config.dense[0].batch_norm  # as in UserTower
        self.categorical = CategoricalEncoder(config.categorical)
        self.numerical = NumericEncoder(config.numerical, bias=bias)
        # the MiniLM encoder is frozen by construction: only its output vectors come in; these
        # projections (384 -> 64 per text field) are the trained part
        self.text = nn.ModuleList(
            nn.Linear(t.embedding_dim, t.projection_dim, bias=bias) for t in config.text
        )
        width = self.categorical.width + self.numerical.width + sum(t.projection_dim for t in config.text)
        assert width == config.input_width()
        self.dense = dense_stack(width, config.dense)
        self.projection = dense_stack(config.dense[-1].units, config.projection)
        self.skip = linear_skip(config.linear_skip, width, config.projection[-1].units)

    def forward(self, categorical: torch.Tensor, numerical: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        return self.encode(categorical, numerical, text)[0]

    def encode(
        self, categorical: torch.Tensor, numerical: torch.Tensor, text: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(item embedding, input representation)``: the second is what the first dense layer reads (the
        categorical and numerical embeddings and the text projections, concatenated)."""
        parts = [self.categorical(categorical), self.numerical(numerical)]
        parts += [proj(text[:, i].float()) for i, proj in enumerate(self.text)]
        x = torch.cat(parts, dim=-1)
        out = self.projection(self.dense(x))
        if self.skip is not None:
            out = out + self.skip(x)
        return F.normalize(out, dim=-1), x
