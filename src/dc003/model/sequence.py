"""The user tower's history encoder: a small pre-norm Transformer over the last <= 50 purchases.

A history token is a linear map of what the item tower knows of the purchased item: its embedding and its
input representation (the categorical embeddings, numerical encodings and MiniLM text projections the
item tower's first dense layer reads), plus its recency position (and, optionally, an item-id and
attribute embeddings). The input representation holds the article's content linearly, so the history
can carry taste directions the item embedding does not hold yet; the embedding ties the token to the
space the candidates live in. In training the token features come from the same forward pass as the
candidates' (``vectors``: gradients reach the item tower from both sides); in evaluation and serving the
tokens are read from ``item_tokens``, the catalogue's tokens stored in the module (refreshed by
:meth:`HistoryEncoder.set_item_tokens` from the catalogue as served, and exported inside the ONNX user
tower: ``n_items x d_model`` floats).

Inputs are the history item indices ``(B, L)``, most recent first, and a padding mask ``(B, L)`` (True =
no item). ``L`` may be anything from 0 to ``max_len``: the batch builder trims every batch to its longest
real history, and the learned position of a token is its recency rank, so trimming never changes what a
token means. A learned CLS token is prepended and is never masked: an empty history attends to it alone
(no NaN) and its output is the pooled history vector. The last layer computes the CLS query only, since
nothing else of it is read.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dc003.model.config import SequenceSpec
from dc003.model.layers import batch_sum, dropout


class _EncoderLayer(nn.Module):
    """Pre-norm self-attention + feed-forward, attention by ``scaled_dot_product_attention``."""

    def __init__(self, d_model: int, heads: int, feedforward: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.dropout = dropout
        self.norm1 = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.ff1 = nn.Linear(d_model, feedforward)
        self.ff2 = nn.Linear(feedforward, d_model)

    def forward(self, x: torch.Tensor, attend: torch.Tensor, cls_only: bool = False) -> torch.Tensor:
        b, t = x.shape[0], x.shape[1]
        d = self.out.in_features  # a constant, not read off the input: exported, the weight slices fold
        dh = d // self.heads
        h = self.norm1(x)
        w, bias = self.qkv.weight, self.qkv.bias
        kv = F.linear(h, w[d:], bias[d:])
        if cls_only:
            h, x = h[:, :1], x[:, :1]
        q = F.linear(h, w[:d], bias[:d])
        tq = q.shape[1]
        q = q.view(b, tq, self.heads, dh).transpose(1, 2)
        k, v = kv.view(b, t, 2, self.heads, dh).permute(2, 0, 3, 1, 4)
        # no dropout on the attention weights: PyTorch's CPU kernel falls back to a path ~10x slower
        # with it; the encoder's dropout acts on the token embeddings and on both residual branches.
        # The mask goes in additive (0 / -inf in the query's dtype), the same numbers as the boolean mask
        # to the bit: exported, a boolean mask adds a NaN scrub over the whole attention matrix (IsNaN +
        # Where, ~10 % of the user tower's ONNX time) that the CLS key, never masked, makes idle
        neg = torch.zeros(attend.shape, dtype=q.dtype, device=q.device).masked_fill(~attend, float("-inf"))
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=neg)
        p = self.dropout
        x = x + dropout(self.out(a.transpose(1, 2).reshape(b, tq, d)), p, self.training)
        # (no dropout on the 4x wider feed-forward activations: it cost as much as the matmul around it)
        f = self.ff2(F.relu(self.ff1(self.norm2(x))))
        return x + dropout(f, p, self.training)


RESIDUAL_MOMENTUM = 0.05  # per training step, for the running mean purchased embedding


class HistoryEncoder(nn.Module):
    item_attributes: torch.Tensor
    item_tokens: torch.Tensor
    item_residuals: torch.Tensor
    residual_mean: torch.Tensor

    def __init__(self, spec: SequenceSpec, *, output_bias: bool = True) -> None:
        super().__init__()
        d = spec.d_model
        self.n_items = spec.n_items
        self.dropout = spec.dropout
        self.item_projection = nn.Linear(spec.item_dim, d)
        # the catalogue's history tokens, item_projection(features) (eval and serving); row n_items (an id
        # outside the catalogue) is the projection's bias
        self.register_buffer("item_tokens", torch.zeros(spec.n_items + 1, d))
        self.item_embedding = nn.Embedding(spec.n_items + 1, d) if spec.item_id_embedding else None
        # the residual path: the catalogue's item embeddings (the first residual_dim token features)
        self.residual_dim = spec.residual_dim
        self.register_buffer("item_residuals", torch.zeros(spec.n_items + 1, spec.residual_dim))
        # residual_inputs: the residual reads a learned linear map of the whole token features (item
        # embedding + input representation) instead of the embedding alone; it starts as the embedding
        # alone. The catalogue's mapped rows are what item_residuals stores (eval, export, serving).
        self.residual_projection: nn.Linear | None = None
        if spec.residual_inputs and spec.residual_dim:
            self.residual_projection = nn.Linear(spec.item_dim, spec.residual_dim, bias=False)
            with torch.no_grad():
                self.residual_projection.weight.zero_()
                self.residual_projection.weight[:, : spec.residual_dim] = torch.eye(spec.residual_dim)
        # residual_centred: the running mean of purchased items' embeddings (updated in training like a
        # batch-norm statistic, a constant at eval, export and serving)
        self.residual_centred = spec.residual_centred
        if spec.residual_centred:
            self.register_buffer("residual_mean", torch.zeros(spec.residual_dim))
        self.attribute_embeddings = nn.ModuleList(nn.Embedding(a.vocab_size, d) for a in spec.item_attributes)
        # the catalogue's attribute indices per item id: data, not architecture, so a buffer (saved in the
        # state dict) filled by set_item_attributes; the extra last row is the unknown bucket
        self.register_buffer(
            "item_attributes", torch.zeros(spec.n_items + 1, len(spec.item_attributes), dtype=torch.long)
        )
        self.position = nn.Parameter(torch.zeros(spec.max_len, d))
        self.cls = nn.Parameter(torch.zeros(1, 1, d))
        nn.init.normal_(self.position, std=0.02)
        nn.init.normal_(self.cls, std=0.02)
        self.layers = nn.ModuleList(
            _EncoderLayer(d, spec.num_heads, spec.feedforward_dim, spec.dropout)
            for _ in range(spec.num_layers)
        )
        self.norm = nn.LayerNorm(d, bias=output_bias)
        self.max_len = spec.max_len
        self.width = d

    def set_item_attributes(self, attributes: torch.Tensor) -> None:
        """``(n_items, n_attributes)`` encoded item categoricals (0 = unknown)."""
        if attributes.shape != (self.n_items, self.item_attributes.shape[1]):
            raise ValueError(f"item attributes must be {(self.n_items, self.item_attributes.shape[1])}")
        self.item_attributes[: self.n_items] = attributes.long()
        self.item_attributes[self.n_items] = 0

    @torch.no_grad()
    def set_item_tokens(self, features: torch.Tensor) -> None:
        """Store the tokens of the catalogue from its ``(n_items, item_dim)`` token features (as of the
        split served; they depend on the weights, so refresh after any training)."""
        if features.shape != (self.n_items, self.item_projection.in_features):
            shape = (self.n_items, self.item_projection.in_features)
            raise ValueError(f"item token features must be {shape}")
        self.item_tokens[: self.n_items] = self.item_projection(features.float())
        self.item_tokens[self.n_items] = self.item_projection.bias
        self.item_residuals[: self.n_items] = self._residual_rows(features.float())

    def forward(
        self, items: torch.Tensor, padding: torch.Tensor, vectors: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``vectors`` ``(B, L, item_dim)``: the history items' token features from the item tower in this
        forward pass (training); ``None`` reads their tokens from ``item_tokens``."""
        b, length = items.shape
        if length > self.max_len:
            raise ValueError(f"history length {length} exceeds max_len {self.max_len}")
        cls = self.cls.expand(b, 1, -1)
        if length:
            ids = items.long()
            ids = torch.where((ids >= 0) & (ids < self.n_items), ids, torch.full_like(ids, self.n_items))
            tok = self.item_tokens[ids] if vectors is None else self.item_projection(vectors)
            if self.item_embedding is not None:
                tok = tok + self.item_embedding(ids)
            attrs = self.item_attributes[ids]
            for k, table in enumerate(self.attribute_embeddings):
                tok = tok + table(attrs[..., k])
            tok = dropout(tok + self.position[:length], self.dropout, self.training)
            x = torch.cat([cls, tok], dim=1)
            attend = torch.cat(
                [torch.ones(b, 1, dtype=torch.bool, device=padding.device), ~padding.bool()], 1
            )
        else:
            x = cls
            attend = torch.ones(b, 1, dtype=torch.bool, device=items.device)
        mask = attend[:, None, None, :]
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            x = layer(x, mask, cls_only=i == last)
        return self.norm(x[:, 0])

    def _residual_rows(self, features: torch.Tensor) -> torch.Tensor:
        """What the residual path sums per item, from its ``(..., item_dim)`` token features."""
        if self.residual_projection is None:
            return features[..., : self.residual_dim]
        return self.residual_projection(features)

    def residual(
        self, items: torch.Tensor, padding: torch.Tensor, vectors: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``(B, residual_dim)``: the L2-normalised sum of the history items' embeddings (zero for an empty
        history); ``vectors`` as in :meth:`forward`."""
        b, length = items.shape
        if not length:
            return torch.zeros(b, self.residual_dim, device=items.device)
        if vectors is None:
            ids = items.long()
            ids = torch.where((ids >= 0) & (ids < self.n_items), ids, torch.full_like(ids, self.n_items))
            emb = self.item_residuals[ids]
        else:
            emb = self._residual_rows(vectors)
        keep = (~padding.bool()).to(emb.dtype)[..., None]
        total = (emb * keep).sum(dim=1)
        if self.residual_centred:
            if self.training:
                with torch.no_grad():  # over the whole batch when it is split across processes
                    sums = batch_sum(torch.cat([keep.sum().reshape(1), total.sum(dim=0)]).float())
                    n = sums[0]
                    if n > 0:
                        batch_mean = sums[1:] / n
                        self.residual_mean.mul_(1 - RESIDUAL_MOMENTUM).add_(RESIDUAL_MOMENTUM * batch_mean)
            total = total - keep.sum(dim=1) * self.residual_mean.to(total.dtype)
        return F.normalize(total, dim=-1)
