"""Exponential moving average of a model's weights (phase 4: both towers, every optimiser step).

``shadow = decay * shadow + (1 - decay) * weight`` for every floating-point parameter and buffer
(batch-norm running statistics included); integer buffers (counters, index tables) are copied.
"""

from __future__ import annotations

import torch
from torch import nn


class Ema:
    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must lie in (0, 1) (got {decay})")
        self.decay = decay
        self.shadow: dict[str, torch.Tensor] = {k: v.detach().clone() for k, v in model.state_dict().items()}
        self.updates = 0

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        for key, value in model.state_dict().items():
            shadow = self.shadow[key]
            if shadow.is_floating_point():
                shadow.mul_(self.decay).add_(value.detach(), alpha=1.0 - self.decay)
            else:
                shadow.copy_(value)
        self.updates += 1

    def copy_to(self, model: nn.Module) -> None:
        model.load_state_dict(self.shadow)

    def state_dict(self) -> dict[str, object]:
        return {"decay": self.decay, "updates": self.updates, "shadow": self.shadow}

    def load_state_dict(self, state: dict[str, object]) -> None:
        shadow = state["shadow"]
        assert isinstance(shadow, dict)
        self.shadow = {k: v.clone() for k, v in shadow.items()}
        self.decay = float(state["decay"])  # type: ignore[arg-type]
        self.updates = int(state["updates"])  # type: ignore[call-overload]
