"""Training on several processes: torch.distributed + DistributedDataParallel (params ``train.nproc``).

The stage re-runs itself under torchrun (:mod:`dc003.train.launch`); each process is one rank of a process
group, ``gloo`` on CPU, ``nccl`` on CUDA (one GPU per rank, fp16 autocast + grad scaler as one process).

**The batch.** Every rank draws the same epoch order, random negatives and hard negatives (the loop's
seeded generators, identical on every rank), so each step's global batch is exactly one process's, of
``batch_size`` examples. Its tower work is split: rank ``r`` runs its contiguous slice of the batch's
distinct item rows and of its user rows (one per basket), about ``1 / nproc`` of each.

**The loss.** The slices' embeddings are gathered from every rank with gradient
(``torch.distributed.nn.functional.all_gather``) and every rank computes the phase objective on the whole
batch, exactly as one process: the InfoNCE denominator holds every in-batch and shared random negative of
the global batch, BPR, the category alignment, the distillation and the history terms see the whole batch,
and the logQ correction reads global counts (the item counts of the whole train split, computed by every
rank from the same data; a rank never counts its shard alone). The gather's backward sums each rank's
gradient into the rank that computed the rows, and DDP averages over ranks, so the parameter gradient is
one process's gradient (up to summation order). Computing the loss on every rank repeats only the small
``(B, B + negatives)`` score matrix; the towers are split.

**Inside the towers** whatever reads the whole batch is kept whole (:class:`dc003.model.layers.RowShard`):
batch-norm statistics and the history residual's running mean sum over every rank's rows, and on CPU a
rank's dropout mask is its rows of the mask one process draws. So on CPU the per-step loss curve is one
process's up to floating-point summation order (tests/test_distributed.py).

Rank 0 alone validates and writes checkpoints, dvclive logs and resume state; the other ranks wait at a
barrier and write nothing.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from dc003.model.layers import RowShard, row_shard
from dc003.model.two_tower import ItemFeatures, TwoTowerModel, UserFeatures
from dc003.train.launch import check_batch_size, worker

__all__ = [
    "Distributed",
    "check_batch_size",
    "device",
    "is_main",
    "local_processes",
    "process_group",
    "worker",
]

# rank 0 validates and writes between epochs while the others wait at a barrier; a full-scale epoch's
# validation must fit (torchrun stops every rank as soon as one fails, so a crash never waits this long)
TIMEOUT = timedelta(hours=2)


def is_main() -> bool:
    """Rank 0, or a single process: the one that writes."""
    return int(os.environ.get("RANK", "0")) == 0


def local_processes() -> int:
    return int(os.environ.get("LOCAL_WORLD_SIZE", "1")) if worker() else 1


def device() -> torch.device:
    """This process's device: on CUDA a torchrun worker's own GPU (``LOCAL_RANK``), else the CPU."""
    if not torch.cuda.is_available():
        return torch.device("cpu")
    if not worker():
        return torch.device("cuda")  # one process: as before
    index = int(os.environ.get("LOCAL_RANK", "0"))
    torch.cuda.set_device(index)
    return torch.device("cuda", index)


class _SyncBatchNorm(nn.BatchNorm1d):
    """``BatchNorm1d`` whose training statistics are those of the whole batch under a :class:`RowShard`
    (torch's ``SyncBatchNorm`` runs on GPUs only). Set as the ``__class__`` of a model's batch norms while
    it trains on several processes: the same module, parameters and buffers."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from dc003.model.layers import current_row_shard

        shard = current_row_shard()
        if shard is None or not self.training:
            return super().forward(x)
        n = shard.total
        # one collective for both moments (each collective is a point where the ranks wait for each
        # other); in float64, E[x^2] - E[x]^2 loses nothing a float32 two-pass variance keeps
        xd = x.double()
        moments = shard.sum(torch.cat([xd.sum(dim=0), (xd * xd).sum(dim=0)])) / n
        mean, var = moments.chunk(2)
        var = (var - mean * mean).clamp(min=0.0)  # biased, as batch norm normalises with
        y = ((xd - mean) * torch.rsqrt(var + self.eps)).float()
        if self.affine:
            y = y * self.weight + self.bias
        if self.track_running_stats and self.running_mean is not None and self.running_var is not None:
            with torch.no_grad():
                assert self.num_batches_tracked is not None
                self.num_batches_tracked.add_(1)
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.mul_(1 - m).add_(m * mean.detach().float())
                self.running_var.mul_(1 - m).add_(m * var.detach().float() * n / max(n - 1, 1))
        return y.to(x.dtype)


@dataclass(frozen=True)
class Distributed:
    """This process's rank in the training process group, and the collectives of a split batch."""

    rank: int
    world: int
    device: torch.device
    group: Any  # the forward pass's own group (DDP's gradient all-reduce uses the default one)

    @property
    def main(self) -> bool:
        return self.rank == 0

    def sizes(self, n: int) -> list[int]:
        """Rows of each rank when ``n`` rows are split (contiguous, sizes differ by at most one)."""
        return [n // self.world + (r < n % self.world) for r in range(self.world)]

    def sum(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` summed over the ranks, with gradient."""
        from torch.distributed.nn.functional import all_reduce

        return all_reduce(x, group=self.group)

    def gather(self, parts: tuple[torch.Tensor, ...], n: int) -> tuple[torch.Tensor, ...]:
        """Each rank's rows of ``parts`` (one collective for all of them), concatenated in rank order into
        the ``n`` rows of the whole batch, with gradient."""
        from torch.distributed.nn.functional import all_gather

        sizes = self.sizes(n)
        dtype = parts[0].dtype
        for t in parts[1:]:
            dtype = torch.promote_types(dtype, t.dtype)
        flat = torch.cat([t.reshape(t.shape[0], -1).to(dtype) for t in parts], dim=1)
        pad = max(sizes) - flat.shape[0]
        if pad:  # all_gather moves equal shapes
            flat = torch.cat([flat, flat.new_zeros(pad, flat.shape[1])])
        whole = torch.cat([g[:s] for g, s in zip(all_gather(flat, group=self.group), sizes, strict=True)])
        out, start = [], 0
        for t in parts:
            width = int(np.prod(t.shape[1:]))
            out.append(whole[:, start : start + width].reshape(n, *t.shape[1:]).to(t.dtype))
            start += width
        return tuple(out)

    def encode_rows(
        self, n: int, encode: Callable[[slice], tuple[torch.Tensor, ...]]
    ) -> tuple[torch.Tensor, ...]:
        """``encode`` on this rank's slice of a tower pass over ``n`` rows, gathered: the ``n`` rows as one
        process computes them. With fewer rows than ranks every rank runs them all (nothing to gather)."""
        if n < self.world:
            return encode(slice(0, n))
        sizes = self.sizes(n)
        start = sum(sizes[: self.rank])
        with row_shard(RowShard(start, n, self.sum)):
            parts = encode(slice(start, start + sizes[self.rank]))
        return self.gather(parts, n)

    def barrier(self) -> None:
        dist.barrier()

    def check_same(self, value: int, what: str) -> None:
        """Stop when the ranks disagree on ``value`` (e.g. a digest of the epoch's batches)."""
        from dc003.errors import Dc003Error

        t = torch.tensor([value, -value], dtype=torch.int64, device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX, group=self.group)
        if int(t[0]) != value or int(t[1]) != -value:
            raise Dc003Error(f"rank {self.rank}: {what} differs between the processes; training stopped")

    def wrap(self, model: TwoTowerModel) -> DistributedDataParallel:
        """``model`` for training on every rank: batch norms synchronised and a DDP-wrapped forward of this
        rank's slice of the batch (the parameters stay ``model``'s)."""
        for module in model.modules():
            if type(module) is nn.BatchNorm1d:
                module.__class__ = _SyncBatchNorm
        return DistributedDataParallel(
            _SplitBatch(model, self),
            device_ids=[self.device.index] if self.device.type == "cuda" else None,
            # buffers (synced at construction) stay equal on every rank: their batch statistics are the whole
            # batch's; broadcasting them each step would move the catalogue's history tokens for nothing
            forward_sync_buffers=False,
            # a batch of empty histories leaves the history encoder's parameters out of the graph
            find_unused_parameters=True,
        )

    @staticmethod
    def unwrap(model: TwoTowerModel) -> None:
        for module in model.modules():
            if type(module) is _SyncBatchNorm:
                plain: nn.Module = module
                plain.__class__ = nn.BatchNorm1d


class _SplitBatch(nn.Module):
    """One training step's forward on this rank's slice of the batch: items, then users (whose history
    tokens read the whole batch's item rows), both gathered, then the phase objective on the whole batch.
    The same steps as :meth:`TwoTowerModel.forward` in training."""

    def __init__(self, model: TwoTowerModel, group: Distributed) -> None:
        super().__init__()
        self.model = model
        self.group = group

    def forward(
        self, users: UserFeatures, items: ItemFeatures, labels: Mapping[str, torch.Tensor]
    ) -> torch.Tensor:
        m, g = self.model, self.group
        history_rows = labels.get("history_rows")

        def item_rows(s: slice) -> tuple[torch.Tensor, ...]:
            part = ItemFeatures(*(t[s] for t in items))
            return m.item_token_features(part) if history_rows is not None else (m.get_item_embeddings(part),)

        encoded = g.encode_rows(items.categorical.shape[0], item_rows)
        item, feats = encoded[0], (encoded[1] if history_rows is not None else None)

        def user_rows(s: slice) -> tuple[torch.Tensor, ...]:
            vectors = None if feats is None or history_rows is None else feats[history_rows[s]]
            u = users
            return m.user_tower.encode(
                u.categorical[s], u.numerical[s], u.history[s], u.history_padding[s], history_vectors=vectors
            )

        user, pooled = g.encode_rows(users.categorical.shape[0], user_rows)
        return m.training_loss(user, item, pooled, labels)


@contextmanager
def process_group(dev: torch.device) -> Iterator[Distributed | None]:
    """The training process group for the length of a phase (``None`` in a single process)."""
    if not worker():
        yield None
        return
    # the autograd collectives of torch.distributed.nn.functional are what this uses on purpose
    warnings.filterwarnings("ignore", message=r"torch\.distributed\.nn\.functional\.", category=FutureWarning)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    dist.init_process_group(backend, timeout=TIMEOUT, device_id=dev if dev.type == "cuda" else None)
    try:
        group = dist.new_group(backend=backend, timeout=TIMEOUT)
        yield Distributed(dist.get_rank(), dist.get_world_size(), dev, group)
        dist.barrier()
    finally:
        dist.destroy_process_group()


def order_digest(order: list[np.ndarray]) -> int:
    """A number every rank computes from the epoch's batches (positions in order): equal on every rank."""
    h = 0
    for i, pos in enumerate(order):
        h = (h * 1_000_003 + (i + 1) * int(pos.sum()) + pos.size) % (1 << 61)
    return h
