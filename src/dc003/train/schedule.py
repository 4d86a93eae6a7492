"""Learning-rate schedules as pure functions of training progress, so a resumed run recomputes the exact
rate instead of restoring scheduler state. Progress ``t`` is measured in epochs (``epoch + i / batches``),
which keeps the shape exact even though a batch holds whole baskets and the batch count varies a little.

- ``constant``: ``lr``.
- ``cosine_annealing``: one cosine from ``lr`` to ``min_lr`` over all epochs.
- ``cosine_annealing_warm_restarts``: a cosine from ``lr`` to ``min_lr`` within each cycle; the first cycle
  lasts ``restart_epochs`` epochs, each next one ``restart_mult`` times longer (SGDR). With 3 epochs,
  1 and 2, the last epoch ends at ``min_lr``.
- ``linear_decay``: ``lr`` down to ``min_lr`` linearly over all epochs.

An optional linear warm-up multiplies the first ``warmup_steps`` optimiser steps' rates by
``(step + 1) / warmup_steps``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Schedule:
    kind: str
    lr: float
    min_lr: float
    epochs: int
    restart_epochs: int = 1
    restart_mult: int = 1
    warmup_steps: int = 0

    def __call__(self, t: float, step: int = 0) -> float:
        rate = self._base(t)
        if self.warmup_steps and step < self.warmup_steps:
            rate *= (step + 1) / self.warmup_steps
        return rate

    def _base(self, t: float) -> float:
        if self.kind == "constant":
            return self.lr
        if self.kind == "cosine_annealing":
            return self._cosine(t, float(self.epochs))
        if self.kind == "linear_decay":
            frac = min(max(t / self.epochs, 0.0), 1.0)
            return self.lr + (self.min_lr - self.lr) * frac
        if self.kind == "cosine_annealing_warm_restarts":
            period = float(self.restart_epochs)
            while t >= period:
                t -= period
                period *= self.restart_mult
            return self._cosine(t, period)
        raise ValueError(f"unknown scheduler {self.kind!r}")

    def _cosine(self, t: float, period: float) -> float:
        frac = min(max(t / period, 0.0), 1.0)
        return self.min_lr + (self.lr - self.min_lr) * 0.5 * (1.0 + math.cos(math.pi * frac))
