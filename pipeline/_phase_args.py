"""Command-line paths shared by the phase stages (dvc.yaml passes ${paths.*} values, so changing an
unrelated path never re-runs training)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from dc003.train.run import PhasePaths


def cpu_threads_env() -> None:
    """Before torch loads: OpenMP threads sleep instead of spinning while they wait. On a shared or
    oversubscribed CPU, spinning threads that lose their core stall every parallel region (a phase-2
    step measured 2.2 s with 1 thread, 6.3 s with 2 spinning threads, 1.1 s with 2 passive threads on
    a 2-core machine at load 7); on an idle machine the difference is small."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def phase_paths(
    argv: list[str], *, needs_input: bool, extra: tuple[str, ...] = ()
) -> tuple[PhasePaths, argparse.Namespace]:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--text", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--live", type=Path, required=True)
    parser.add_argument("--resume", type=Path, required=True)
    parser.add_argument("--input", type=Path, required=needs_input)
    parser.add_argument("--validation", type=Path)
    for name in extra:
        parser.add_argument(f"--{name}", type=Path, required=True)
    args = parser.parse_args(argv)
    paths = PhasePaths(
        dataset_dir=args.dataset,
        text_dir=args.text,
        out_dir=args.out,
        live_dir=args.live,
        resume_dir=args.resume,
        input_dir=args.input,
        validation=args.validation,
    )
    return paths, args


def on_processes(params: Any, phase: str) -> bool:
    """``True`` when params ``train.nproc`` > 1 and the stage just ran on that many processes under
    torchrun (this process only waited: :mod:`dc003.train.launch`); ``False``: this process trains."""
    from dc003.train.launch import run_on_processes

    batch_size = getattr(params, phase).batch_size
    return run_on_processes(
        params.train.nproc, f"pipeline.{phase}", sys.argv[1:], phase=phase, batch_size=batch_size
    )


def report(summary: dict[str, object]) -> None:
    if not summary:  # a rank other than 0 of a distributed run: rank 0 reports
        return
    final, speed = summary["final"], summary["speed"]
    assert isinstance(final, dict) and isinstance(speed, dict)
    nan = float("nan")
    print(
        f"{summary['phase']}: {speed['samples_per_s']} samples/s in {speed['train_seconds']} s "
        f"({summary['precision']}, "
        f"{summary['device']}); val recall@50 {final.get('val/recall_50', nan):.4f}, "
        f"ndcg@10 {final.get('val/ndcg_10', nan):.4f}, coverage@50 {final.get('val/coverage_50', nan):.4f}"
    )
