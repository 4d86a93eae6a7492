"""Training monitoring through dvclive, in the layout `dvc exp show` / `dvc plots` read.

Per optimiser step: ``train/loss``, ``train/lr``, ``train/grad_norm`` (and GPU memory / utilisation on
CUDA). Per epoch: ``val/*`` metrics and ``train/epoch_loss``, plus ``epoch``. The step axis is the
phase's global optimiser step. dvclive is told not to write its own dvc.yaml (the pipeline's dvc.yaml
declares these files) nor to save experiments (DVC runs the stage).

dvclive writes small text files only; :meth:`Monitor.snapshot` captures them into the resume state and
:func:`restore_snapshot` puts them back, so a resumed phase continues the same curves even though DVC
removed the stage's outputs before re-running it.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
from pathlib import Path

import torch


def restore_snapshot(live_dir: Path, files: dict[str, str]) -> None:
    shutil.rmtree(live_dir, ignore_errors=True)
    for rel, text in files.items():
        path = live_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


class Monitor:
    def __init__(self, live_dir: Path, *, resume: bool) -> None:
        os.environ.setdefault("DVC_NO_ANALYTICS", "1")
        from dvclive import Live

        self.dir = live_dir
        self.live = Live(dir=str(live_dir), resume=resume, save_dvc_exp=False, dvcyaml=False)
        self.cuda = torch.cuda.is_available()

    def step(self, step: int, loss: float, lr: float, grad_norm: float) -> None:
        live = self.live
        live.step = step
        live.log_metric("train/loss", loss)
        live.log_metric("train/lr", lr)
        live.log_metric("train/grad_norm", grad_norm)
        if self.cuda:
            live.log_metric("gpu/memory_allocated_mb", torch.cuda.memory_allocated() / 2**20)
            live.log_metric("gpu/max_memory_allocated_mb", torch.cuda.max_memory_allocated() / 2**20)
            # utilisation needs pynvml; memory is logged without it
            with contextlib.suppress(Exception):
                live.log_metric("gpu/utilization_percent", float(torch.cuda.utilization()))

    def epoch(self, step: int, epoch: int, metrics: dict[str, float]) -> None:
        live = self.live
        live.step = step
        live.log_metric("epoch", epoch)
        for name, value in metrics.items():
            if isinstance(value, (int, float)) and math.isfinite(value):
                live.log_metric(name, float(value))
        live.make_summary()

    def snapshot(self) -> dict[str, str]:
        if not self.dir.is_dir():
            return {}
        return {
            str(p.relative_to(self.dir)): p.read_text(encoding="utf-8")
            for p in sorted(self.dir.rglob("*"))
            if p.is_file()
        }

    def close(self) -> None:
        self.live.make_summary()
        self.live.end()
