"""Building blocks shared by both towers: categorical and numerical encoders, dense stacks.

Normalisation happens inside the encoders (fitted statistics are buffers), so an exported tower takes
raw feature values and serving cannot apply different statistics than training did.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dc003.model.config import CategoricalSpec, DenseSpec, NumericSpec

_ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh}


@dataclass(frozen=True)
class RowShard:
    """Training on several processes (:mod:`dc003.train.distributed`): this process runs rows
    ``[offset, offset + n)`` of a tower pass over ``total`` rows; ``sum`` adds a tensor over the processes.
    What depends on the whole batch reads it: dropout draws the whole batch's mask and keeps this
    process's rows, batch statistics sum over every process's rows."""

    offset: int
    total: int
    sum: Callable[[torch.Tensor], torch.Tensor]


_ROW_SHARD: ContextVar[RowShard | None] = ContextVar("row_shard", default=None)


@contextmanager
def row_shard(shard: RowShard) -> Iterator[None]:
    token = _ROW_SHARD.set(shard)
    try:
        yield
    finally:
        _ROW_SHARD.reset(token)


def current_row_shard() -> RowShard | None:
    return _ROW_SHARD.get()


def batch_sum(x: torch.Tensor) -> torch.Tensor:
    """``x`` (a sum over this process's rows) summed over every process's rows of the batch."""
    shard = _ROW_SHARD.get()
    return x if shard is None else shard.sum(x)


def _mask_bytes(seed: int, skip: int, n: int) -> bytes:
    """Bytes ``[skip, skip + n)`` of ``default_rng(seed).bytes(...)`` (PCG64 yields 8 bytes a step)."""
    rng = np.random.Generator(np.random.PCG64(seed).advance(skip // 8))
    return rng.bytes(skip % 8 + n)[skip % 8 :]


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Inverted dropout. On CPU the keep-mask comes from numpy's PCG64 (16 random bits per element,
    kept when >= p * 2^16): PyTorch's CPU ``bernoulli_`` measured ~2x slower and was the largest
    elementwise cost of a training step. The numpy stream is seeded from torch's global generator, so a
    seeded run is reproducible exactly as with ``F.dropout``. Elsewhere (CUDA) it is ``F.dropout``.
    Under a :class:`RowShard` a process keeps its rows of the whole batch's mask: on CPU the same mask as
    one process (the stream skipped to its first row), on CUDA an independent mask per row.
    """
    if not training or p == 0.0:
        return x
    shard = _ROW_SHARD.get()
    if x.device.type != "cpu":
        if shard is None:
            return F.dropout(x, p, training=True)
        gen = torch.Generator(device=x.device)
        gen.manual_seed(int(torch.randint(0, 2**62, (1,))))
        u = torch.rand((shard.total, *x.shape[1:]), generator=gen, device=x.device)
        return x * (u[shard.offset : shard.offset + x.shape[0]] >= p).to(x.dtype) / (1.0 - p)
    seed = int(torch.randint(0, 2**62, (1,)))
    if shard is None:
        bits = np.frombuffer(np.random.default_rng(seed).bytes(2 * x.numel()), dtype=np.uint16)
    else:
        row = x[0].numel() if x.shape[0] else 0
        bits = np.frombuffer(_mask_bytes(seed, 2 * shard.offset * row, 2 * x.numel()), dtype=np.uint16)
    keep = np.where(bits >= round(p * 65536), np.float32(1.0 / (1.0 - p)), np.float32(0.0))
    return x * torch.from_numpy(keep.reshape(x.shape)).to(x.dtype)


class Dropout(nn.Module):
    """:func:`dropout` as a module (for ``nn.Sequential`` stacks)."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)


class CategoricalEncoder(nn.Module):
    """``(B, C)`` int indices -> concatenated embeddings. Any index outside ``[0, vocab)`` reads row 0
    (the DC-002 unknown/overflow bucket), so an unseen value at serving time cannot crash the lookup."""

    vocab: torch.Tensor

    def __init__(self, specs: list[CategoricalSpec]) -> None:
        super().__init__()
        self.tables = nn.ModuleList(nn.Embedding(s.vocab_size, s.embedding_dim) for s in specs)
        self.register_buffer("vocab", torch.tensor([s.vocab_size for s in specs], dtype=torch.long))
        self.width = sum(s.embedding_dim for s in specs)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        idx = idx.long()
        idx = torch.where((idx >= 0) & (idx < self.vocab), idx, torch.zeros_like(idx))
        return torch.cat([table(idx[:, i]) for i, table in enumerate(self.tables)], dim=-1)


class NumericEncoder(nn.Module):
    """``(B, F)`` raw values -> normalised values, each learned one through its own ``Linear(1, dim)``.

    Missing values (NaN) are replaced by the train-split mean before normalisation (missing age).
    """

    impute: torch.Tensor
    log: torch.Tensor
    shift: torch.Tensor
    scale: torch.Tensor

    def __init__(self, specs: list[NumericSpec], *, bias: bool = True) -> None:
        super().__init__()
        self.register_buffer("impute", torch.tensor([s.impute for s in specs], dtype=torch.float32))
        self.register_buffer("log", torch.tensor([s.log for s in specs], dtype=torch.bool))
        self.register_buffer("shift", torch.tensor([s.shift for s in specs], dtype=torch.float32))
        self.register_buffer("scale", torch.tensor([s.scale for s in specs], dtype=torch.float32))
        self.learned = [i for i, s in enumerate(specs) if s.embedding_dim is not None]
        self.passthrough = [i for i, s in enumerate(specs) if s.embedding_dim is None]
        self.projections = nn.ModuleList(
            nn.Linear(1, specs[i].embedding_dim or 1, bias=bias) for i in self.learned
        )
        self.width = sum(s.width for s in specs)

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        x = torch.where(torch.isnan(x), self.impute, x)
        x = torch.where(self.log, torch.log1p(torch.clamp(x, min=0.0)), x)
        return (x - self.shift) / self.scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.normalise(x)
        parts = [proj(z[:, i : i + 1]) for i, proj in zip(self.learned, self.projections, strict=True)]
        parts += [z[:, i : i + 1] for i in self.passthrough]
        return torch.cat(parts, dim=-1)


def dense_stack(in_width: int, specs: list[DenseSpec]) -> nn.Sequential:
    """Linear -> [BatchNorm] -> activation -> [Dropout] for each declared layer.

    A Linear followed by batch norm has no bias: the normalisation subtracts any constant offset, so such
    a bias would only ever receive a zero gradient (and be flagged as a dead layer).
    """
    layers: list[nn.Module] = []
    width = in_width
    for spec in specs:
        layers.append(nn.Linear(width, spec.units, bias=not spec.batch_norm))
        if spec.batch_norm:
            layers.append(nn.BatchNorm1d(spec.units))
        if spec.activation != "none":
            layers.append(_ACTIVATIONS[spec.activation]())
        if spec.dropout > 0:
            layers.append(Dropout(spec.dropout))
        width = spec.units
    return nn.Sequential(*layers)
