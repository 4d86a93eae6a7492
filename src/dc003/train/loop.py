"""The phase loop shared by all four phases (the contract's ``TrainingPipeline``).

Per epoch: seeded sampling (the seed is derived from (seed, phase, epoch), so a resumed run draws exactly
what an uninterrupted one would), length-bucketed batches, gradient accumulation, clipping, the LR
schedule, an optional EMA, per-step monitoring, then validation and an atomic end-of-epoch resume state.
A NaN or Inf loss stops the phase with a clear error; the last end-of-epoch state stays on disk.

Mixed precision: on CUDA with ``mixed_precision`` the forward runs under fp16 autocast with a grad
scaler; on CPU training runs in fp32 (bf16 autocast measured slower on CPUs without bf16 instructions;
see scripts/bench_train.py). The precision that ran is recorded.

On several processes (``dist``: :mod:`dc003.train.distributed`) every rank runs the same loop on the same
global batches through a DDP-wrapped forward of its slice of each batch; rank 0 alone validates, logs and
saves the resume state, the others wait for it at a barrier.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from dc003.errors import Dc003Error
from dc003.model.ema import Ema
from dc003.model.two_tower import TwoTowerModel
from dc003.train.archcheck import GradStats
from dc003.train.monitor import Monitor, restore_snapshot
from dc003.train.recipes import Recipe
from dc003.train.resume import ResumeStore
from dc003.train.schedule import Schedule

if TYPE_CHECKING:
    from dc003.train.distributed import Distributed


@dataclass(frozen=True)
class LoopSettings:
    phase: str
    seed: int
    epochs: int
    batch_size: int
    learning_rate: float
    weight_decay: float
    gradient_clipping: float
    mixed_precision: bool
    scheduler: str
    examples_per_epoch: int = 0
    val_max_users: int = 0  # val buyers sampled for the per-epoch retrieval metrics (0 = all)
    gradient_accumulation: int = 1
    min_learning_rate: float = 0.0
    restart_epochs: int = 1
    restart_mult: int = 1
    warmup_steps: int = 0
    ema_decay: float | None = None


@dataclass
class PhaseResult:
    epochs: list[dict[str, Any]] = field(default_factory=list)
    grad_stats: dict[str, Any] = field(default_factory=dict)
    precision: str = "fp32"
    device: str = "cpu"
    train_seconds: float = 0.0
    train_samples: int = 0
    steps: int = 0
    step_losses_head: float = math.nan
    step_losses_tail: float = math.nan
    # a one-epoch phase: the phase objective on the val examples before its first step (its loss trend is
    # then judged on the same examples before and after, not on two different sets of batches)
    initial_val_loss: float | None = None
    optimizer_state: dict[str, Any] = field(default_factory=dict)
    processes: int = 1  # torch.distributed ranks that trained it

    @property
    def samples_per_s(self) -> float:
        return self.train_samples / self.train_seconds if self.train_seconds else math.nan


Validate = Callable[[TwoTowerModel], dict[str, float]]


def _phase_seed(seed: int, phase: str, epoch: int) -> list[int]:
    return [seed, int(phase.rsplit("_", 1)[-1]) if phase[-1].isdigit() else 0, epoch]


def _precision(settings: LoopSettings, device: torch.device) -> str:
    if device.type == "cuda" and settings.mixed_precision:
        return "fp16-autocast+grad-scaler"
    return "fp32"


def train_phase(
    model: TwoTowerModel,
    recipe: Recipe,
    settings: LoopSettings,
    *,
    device: torch.device,
    validate: Validate,
    live_dir: Path | None = None,
    resume: ResumeStore | None = None,
    progress: bool = True,
    dist: Distributed | None = None,
) -> PhaseResult:
    main = dist is None or dist.main  # the process that validates and writes
    if dist is not None:
        from dc003.train.distributed import check_batch_size

        check_batch_size(settings.phase, settings.batch_size, dist.world)
    model.to(device)
    model.objective = recipe.objective
    model.history_weight = recipe.history_weight
    # the training-only history head learns only in a phase whose objective reads it
    model.history_head.requires_grad_(bool(recipe.history_weight))
    model.train()
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay
    )  # betas / eps / amsgrad: the contract's global_config values are AdamW's defaults
    use_amp = device.type == "cuda" and settings.mixed_precision
    scaler = torch.amp.GradScaler("cuda") if use_amp else None
    ema = Ema(model, settings.ema_decay) if settings.ema_decay else None
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    params = [p for p in model.parameters() if p.requires_grad]
    grads = GradStats(names)
    result = PhaseResult(
        precision=_precision(settings, device), device=str(device), processes=dist.world if dist else 1
    )

    n_examples = recipe.examples["train"].size
    per_epoch = min(settings.examples_per_epoch or n_examples, n_examples)
    schedule = Schedule(
        kind=settings.scheduler,
        lr=settings.learning_rate,
        min_lr=settings.min_learning_rate,
        epochs=settings.epochs,
        restart_epochs=settings.restart_epochs,
        restart_mult=settings.restart_mult,
        warmup_steps=settings.warmup_steps,
    )

    start_epoch, step = 0, 0
    if settings.epochs == 1 and main:  # nothing to resume inside a single epoch
        result.initial_val_loss = validate(model).get("val/loss")
    state = _load_state(resume, dist)
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
        grads.load_state_dict(state["grad_stats"])
        result.epochs = list(state["epochs"])
        result.train_seconds, result.train_samples = (
            float(state["train_seconds"]),
            int(state["train_samples"]),
        )
        result.step_losses_head = float(state["step_losses_head"])
        start_epoch, step = int(state["epoch"]) + 1, int(state["step"])
        if live_dir is not None and main:
            restore_snapshot(live_dir, dict(state["live"]))
    monitor = Monitor(live_dir, resume=state is not None) if live_dir is not None and main else None
    ddp = dist.wrap(model) if dist is not None else None
    net = ddp if ddp is not None else model

    head_window = max(1, math.ceil(per_epoch / settings.batch_size / settings.gradient_accumulation) // 10)
    head_losses: list[float] = []
    for epoch in range(start_epoch, settings.epochs):
        rng = np.random.default_rng(_phase_seed(settings.seed, settings.phase, epoch))
        torch.manual_seed(int(rng.integers(0, 2**62)))
        order = recipe.order("train", settings.batch_size, rng)
        if per_epoch < n_examples:
            # whole batches until about per_epoch examples (the order is already random)
            sizes = np.cumsum([b.size for b in order])
            order = order[: int(np.searchsorted(sizes, per_epoch)) + 1]
        if dist is not None:
            from dc003.train.distributed import order_digest

            dist.check_same(order_digest(order), f"{settings.phase} epoch {epoch}'s batches")
        epoch_loss, epoch_count = 0.0, 0
        tail_losses: list[float] = []
        started = time.perf_counter()
        with _progress(progress and main, settings.phase, epoch, settings.epochs, len(order)) as advance:
            for i, pos in enumerate(order):
                users, items, labels = recipe.batch("train", pos, rng)
                last = i == len(order) - 1
                stepping = not (i + 1) % settings.gradient_accumulation or last
                # DDP all-reduces the gradients on the backward of an optimiser step only (the forward
                # under no_sync marks the others)
                sync = ddp.no_sync() if ddp is not None and not stepping else contextlib.nullcontext()
                with sync, torch.autocast("cuda", dtype=torch.float16, enabled=use_amp):
                    loss = net(users, items, labels)
                assert isinstance(loss, torch.Tensor)
                value = float(loss.detach())
                if not math.isfinite(value):
                    raise Dc003Error(_nan_message(settings.phase, epoch, step, value, resume, result))
                scaled = loss / settings.gradient_accumulation
                if scaler is not None:
                    scaler.scale(scaled).backward()
                else:
                    scaled.backward()
                epoch_loss += value * pos.size
                epoch_count += pos.size
                if (i + 1) % settings.gradient_accumulation and not last:
                    advance()
                    continue
                lr = schedule(epoch + i / len(order), step)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                if scaler is not None:
                    scaler.unscale_(optimizer)
                norm = _clip(params, settings.gradient_clipping, grads)
                if scaler is not None:
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    if not math.isfinite(norm):
                        raise Dc003Error(
                            _nan_message(settings.phase, epoch, step, norm, resume, result, "gradient norm")
                        )
                    optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                if ema is not None:
                    ema.update(model)
                if monitor is not None:
                    monitor.step(step, value, lr, norm)
                if len(head_losses) < head_window and epoch == 0:
                    head_losses.append(value)
                tail_losses = [*tail_losses[-(head_window - 1) :], value] if head_window > 1 else [value]
                step += 1
                advance()
        result.train_seconds += time.perf_counter() - started
        result.train_samples += epoch_count
        if head_losses:
            result.step_losses_head = float(np.mean(head_losses))
        result.step_losses_tail = float(np.mean(tail_losses)) if tail_losses else math.nan

        evaluated = model
        if ema is not None:
            evaluated = copy.deepcopy(model)
            ema.copy_to(evaluated)
        metrics = {
            "train/epoch_loss": epoch_loss / max(epoch_count, 1),
            **(validate(evaluated) if main else {}),
        }
        result.epochs.append({"epoch": epoch, "step": step, **metrics})
        if monitor is not None:
            monitor.epoch(step, epoch, metrics)
        if resume is not None and epoch < settings.epochs - 1 and main:
            resume.save(
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scaler": scaler.state_dict() if scaler is not None else {},
                    "ema": ema.state_dict() if ema is not None else {},
                    "grad_stats": grads.state_dict(),
                    "epochs": result.epochs,
                    "epoch": epoch,
                    "step": step,
                    "train_seconds": result.train_seconds,
                    "train_samples": result.train_samples,
                    "step_losses_head": result.step_losses_head,
                    "live": monitor.snapshot() if monitor is not None else {},
                }
            )
        if dist is not None:
            dist.barrier()  # rank 0 validated and saved the epoch
    if monitor is not None:
        monitor.close()
    if dist is not None:
        dist.unwrap(model)
    if ema is not None:
        ema.copy_to(model)  # the EMA weights are the phase's (final) model
    result.steps = step
    result.grad_stats = grads.summary()
    result.optimizer_state = optimizer.state_dict()
    model.objective = None
    model.history_weight = 0.0
    model.history_head.requires_grad_(True)
    return result


def _load_state(resume: ResumeStore | None, dist: Distributed | None) -> dict[str, Any] | None:
    """The resume state: rank 0 reads it first (and discards an unreadable one), then the others."""
    if resume is None:
        return None
    state = resume.load() if dist is None or dist.main else None
    if dist is not None:
        dist.barrier()
        if not dist.main:
            state = resume.load()
    return state


def _clip(params: list[torch.nn.Parameter], max_norm: float, stats: GradStats) -> float:
    """Clip the global gradient norm to ``max_norm``; record per-parameter norms (before clipping)."""
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    norms = torch.stack(torch._foreach_norm(grads))
    stats.update(norms)
    total = torch.linalg.vector_norm(norms)
    coef = torch.clamp(max_norm / (total + 1e-6), max=1.0)
    torch._foreach_mul_([g for g in grads], coef)
    return float(total)


def _nan_message(
    phase: str,
    epoch: int,
    step: int,
    value: float,
    resume: ResumeStore | None,
    result: PhaseResult,
    what: str = "training loss",
) -> str:
    kept = (
        f"the last good checkpoint is {resume.path} (end of epoch {result.epochs[-1]['epoch']})"
        if resume is not None and result.epochs and resume.path.is_file()
        else "no epoch of this phase completed; its input checkpoint is unchanged"
    )
    return f"{phase}: epoch {epoch}: step {step}: {what} is {value}; the phase stopped ({kept})"


class _progress:
    """A Rich progress bar for one epoch (disabled in tests)."""

    def __init__(self, enabled: bool, phase: str, epoch: int, epochs: int, total: int) -> None:
        self.enabled = enabled
        self.label = f"{phase} epoch {epoch + 1}/{epochs}"
        self.total = total
        self.bar: Any = None

    def __enter__(self) -> Callable[[], None]:
        if not self.enabled:
            return lambda: None
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.bar = Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
        )
        self.bar.start()
        task = self.bar.add_task(self.label, total=self.total)
        return lambda: self.bar.advance(task)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()
