"""Architecture validation, recorded for the gates (which compare; this only measures).

- per-layer gradient norms over every optimiser step of every phase (min / mean / max, steps with a zero
  or non-finite gradient) from :class:`GradStats`;
- parameter count per tower; output shapes (and unit norm) of both towers on real val inputs;
- the per-epoch training-loss trend of every phase.

``gradient_flow.ok``: no layer whose gradient norm was zero on every step, none non-finite, none above
the contract's ``max_grad_norm``, none whose mean is below ``min_grad_norm``.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import torch


class GradStats:
    """Running per-parameter statistics of gradient norms (one foreach norm per step; no extra sync)."""

    def __init__(self, names: list[str]) -> None:
        self.names = names
        n = len(names)
        self.count = 0
        self.sum = torch.zeros(n, dtype=torch.float64)
        self.min = torch.full((n,), math.inf, dtype=torch.float64)
        self.max = torch.zeros(n, dtype=torch.float64)
        self.zero = torch.zeros(n, dtype=torch.long)
        self.nonfinite = torch.zeros(n, dtype=torch.long)

    def update(self, norms: torch.Tensor) -> None:
        v = norms.detach().double().cpu()
        finite = torch.isfinite(v)
        self.nonfinite += (~finite).long()
        v = torch.where(finite, v, torch.zeros_like(v))
        self.zero += (v == 0).long()
        self.sum += v
        self.min = torch.minimum(self.min, v)
        self.max = torch.maximum(self.max, v)
        self.count += 1

    def state_dict(self) -> dict[str, Any]:
        return {
            "names": self.names,
            "count": self.count,
            "sum": self.sum,
            "min": self.min,
            "max": self.max,
            "zero": self.zero,
            "nonfinite": self.nonfinite,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if list(state["names"]) != self.names:
            raise ValueError("gradient statistics were recorded for other parameters")
        self.count = int(state["count"])
        for key in ("sum", "min", "max", "zero", "nonfinite"):
            setattr(self, key, state[key].clone())

    def summary(self) -> dict[str, dict[str, float | int]]:
        out: dict[str, dict[str, float | int]] = {}
        for i, name in enumerate(self.names):
            out[name] = {
                "steps": self.count,
                "mean": float(self.sum[i]) / max(self.count, 1),
                "min": float(self.min[i]) if self.count else math.nan,
                "max": float(self.max[i]),
                "zero_steps": int(self.zero[i]),
                "nonfinite_steps": int(self.nonfinite[i]),
            }
        return out


def gradient_flow(
    layers: dict[str, dict[str, float | int]], min_norm: float, max_norm: float
) -> dict[str, Any]:
    dead = [n for n, s in layers.items() if s["steps"] and s["zero_steps"] == s["steps"]]
    vanishing = [n for n, s in layers.items() if s["steps"] and float(s["mean"]) < min_norm and n not in dead]
    exploding = [n for n, s in layers.items() if float(s["max"]) > max_norm]
    nonfinite = [n for n, s in layers.items() if int(s["nonfinite_steps"]) > 0]
    return {
        "ok": not (dead or vanishing or exploding or nonfinite),
        "min_grad_norm": min_norm,
        "max_grad_norm": max_norm,
        "zero_gradient_layers": dead,
        "vanishing_layers": vanishing,
        "exploding_layers": exploding,
        "nonfinite_layers": nonfinite,
    }


def loss_trend(phases: dict[str, list[float]]) -> dict[str, Any]:
    """Per phase: the losses its trend is judged on (:func:`dc003.train.report.phase_losses`); ``ok`` =
    last < first in every phase (a decreasing trend), ``improves_each_epoch`` = strictly decreasing epoch
    by epoch in every phase."""
    per_phase = {}
    for name, losses in phases.items():
        decreasing = len(losses) < 2 or losses[-1] < losses[0]
        each = all(b < a for a, b in itertools.pairwise(losses))
        per_phase[name] = {"epoch_losses": losses, "decreasing": decreasing, "improves_each_epoch": each}
    return {
        "ok": all(p["decreasing"] for p in per_phase.values()),
        "improves_each_epoch": all(p["improves_each_epoch"] for p in per_phase.values()),
        "phases": per_phase,
    }
