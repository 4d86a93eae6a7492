"""Phase-2 training throughput on one process and on ``--nproc`` processes -> reports/bench_distributed.json.

Runs the phase_2 stage's own code (:func:`dc003.train.run.run_phase_2`: the recipe, the loop, rank 0's
end-of-epoch validation) from a phase-1 checkpoint on the DC-002 dataset, each epoch limited to
``--examples`` training examples, in one process and under torchrun on ``--nproc`` processes
(``train.nproc``: gloo on CPU, nccl on CUDA), each started the way the stage starts them, alternately
``--repeats`` times in the same run (a machine shared with other jobs slows whichever runs then).

A step's time is the wall time from one training batch being built to the next (batch building, both towers
forward and backward, the loss, the gradient all-reduce, clipping, AdamW), on rank 0; the first epoch is
warm-up, and the last step of an epoch (which spans the validation) is not counted. Samples/s of a step =
its examples / its time. Per configuration, over the steps of every repeat: step time median and p95,
samples/s median and p5 (the slow tail); the ratio is the median samples/s on ``--nproc`` processes over
one process's (overall and per repeat). Also recorded: the first repeat's per-step loss curves compared
(the same global batches; tests/test_distributed.py says why they part in the last digits at a real
learning rate).

    python scripts/bench_distributed.py [--nproc 2] [--examples 2560] [--epochs 4] [--repeats 3]
        [--dataset DIR] [--text DIR] [--input PHASE_1_DIR] [--out reports/bench_distributed.json]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the training stages (pipeline/_phase_args.py)

import numpy as np

import dc003  # noqa: F401  (offline environment before anything else loads)

STEPS_FILE = "steps.json"


def _params(args: argparse.Namespace) -> Any:
    from dc003.params.full import load_params, with_overrides

    params = load_params(args.params)
    return with_overrides(
        params, {"phase_2.examples_per_epoch": args.examples, "phase_2.epochs": args.epochs}
    )


def _worker(args: argparse.Namespace) -> None:
    """One run of phase 2 (this process, or one rank under torchrun); rank 0 writes its step times."""
    from dc003.train.distributed import is_main
    from dc003.train.recipes import Recipe
    from dc003.train.run import PhasePaths, run_phase_2

    out = Path(args.worker)
    marks: list[tuple[str, float, int]] = []  # ("epoch" | "step", time, examples)
    order, batch = Recipe.order, Recipe.batch

    def timed_order(self: Recipe, split: str, batch_size: int, rng: np.random.Generator) -> Any:
        if split == "train":
            marks.append(("epoch", time.perf_counter(), 0))
        return order(self, split, batch_size, rng)

    def timed_batch(self: Recipe, split: str, positions: np.ndarray, rng: np.random.Generator) -> Any:
        if split == "train":
            marks.append(("step", time.perf_counter(), int(positions.size)))
        return batch(self, split, positions, rng)

    Recipe.order, Recipe.batch = timed_order, timed_batch  # type: ignore[method-assign]  # timing only
    params = _params(args)
    paths = PhasePaths(
        dataset_dir=args.dataset, text_dir=args.text, out_dir=out / "phase_2", live_dir=out / "live",
        resume_dir=out / "resume", input_dir=args.input,
    )  # fmt: skip
    run_phase_2(params.seed, params.phase_2, paths, dc002_path=Path("contracts/dc002.yaml"), progress=False)
    if is_main():
        (out / STEPS_FILE).write_text(json.dumps(marks), encoding="utf-8")


def _steps(marks: list[list[Any]]) -> tuple[list[float], list[int]]:
    """Step times and sizes: consecutive training batches of one epoch, the first epoch left out."""
    times, sizes, epoch = [], [], -1
    for (kind, t, n), (next_kind, next_t, _) in itertools.pairwise(marks):
        if kind == "epoch":
            epoch += 1
        elif next_kind == "step" and epoch >= 1:
            times.append(next_t - t)
            sizes.append(n)
    return times, sizes


def _summary(values: list[float], tail: int) -> dict[str, float]:
    return {"median": statistics.median(values), f"p{tail}": float(np.percentile(values, tail))}


def _losses(live: Path) -> list[float]:
    lines = (live / "plots/metrics/train/loss.tsv").read_text(encoding="utf-8").splitlines()[1:]
    return [float(line.split("\t")[1]) for line in lines]


def _run(nproc: int, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    from dc003.train.launch import torchrun, torchrun_env

    target = [str(Path(__file__).resolve()), "--worker", str(out), *_forwarded(args)]
    command = torchrun(nproc, target) if nproc > 1 else [sys.executable, *target]
    load_before = os.getloadavg()
    started = time.perf_counter()
    subprocess.run(command, env=torchrun_env(nproc), check=True)
    wall = time.perf_counter() - started
    times, sizes = _steps(json.loads((out / STEPS_FILE).read_text(encoding="utf-8")))
    speed = json.loads((out / "live/speed.json").read_text(encoding="utf-8"))
    return {
        "processes": nproc,
        "step_seconds": times,
        "samples_per_s": [n / t for n, t in zip(sizes, times, strict=True)],
        "phase_samples_per_s": speed["samples_per_s"],  # the stage's own figure: every step, all epochs
        "device": speed["device"],
        "precision": speed["precision"],
        "wall_seconds_with_startup_and_validation": round(wall, 1),
        "load_average_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "losses": _losses(out / "live"),
    }


def _forwarded(args: argparse.Namespace) -> list[str]:
    out = ["--examples", str(args.examples), "--epochs", str(args.epochs), "--params", str(args.params)]
    for name in ("dataset", "text", "input"):
        out += [f"--{name}", str(getattr(args, name))]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--examples", type=int, default=2560, help="training examples per epoch")
    parser.add_argument("--epochs", type=int, default=4, help="epochs (the first is warm-up)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--dataset", type=Path, default=Path("data/dataset"))
    parser.add_argument("--text", type=Path, default=Path("data/text_embed"))
    parser.add_argument("--input", type=Path, default=Path("checkpoints/phases/phase_1"))
    parser.add_argument("--out", type=Path, default=Path("reports/bench_distributed.json"))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(args)
        return

    from dc003.io import read_json, write_json
    from dc003.train.launch import check_batch_size

    params = _params(args)
    check_batch_size("phase_2", params.phase_2.batch_size, args.nproc)
    scratch = Path(tempfile.mkdtemp(prefix="bench_distributed_"))
    runs: list[dict[str, Any]] = []
    try:
        for r in range(args.repeats):
            runs += [_run(n, args, scratch / f"repeat_{r}_nproc_{n}") for n in (1, args.nproc)]
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    curve_1, curve_n = np.array(runs[0]["losses"]), np.array(runs[1]["losses"])
    rel = np.abs(curve_n - curve_1) / np.abs(curve_1)
    configs = {}
    for n in (1, args.nproc):
        mine = [r for r in runs if r["processes"] == n]
        configs[str(n)] = {
            "processes": n,
            "timed_steps": sum(len(r["step_seconds"]) for r in mine),
            "step_seconds": _summary([t for r in mine for t in r["step_seconds"]], 95),
            "samples_per_s": _summary([v for r in mine for v in r["samples_per_s"]], 5),
            "phase_samples_per_s_per_repeat": [r["phase_samples_per_s"] for r in mine],
            "wall_seconds_per_repeat": [r["wall_seconds_with_startup_and_validation"] for r in mine],
            "load_average_before_after_per_repeat": [r["load_average_before_after"] for r in mine],
            "device": mine[0]["device"],
            "precision": mine[0]["precision"],
        }
    one, many = configs["1"], configs[str(args.nproc)]
    per_repeat = [
        statistics.median(runs[2 * r + 1]["samples_per_s"]) / statistics.median(runs[2 * r]["samples_per_s"])
        for r in range(args.repeats)
    ]
    cores = len(os.sched_getaffinity(0))
    report = {
        "benchmark": f"phase_2 training throughput, 1 vs {args.nproc} processes (train.nproc)",
        "settings": {
            "batch_size": params.phase_2.batch_size,
            "examples_per_epoch": args.examples,
            "epochs": args.epochs,
            "repeats": args.repeats,
            "dataset_dir": str(args.dataset),
            "dataset_counts": {
                k.removesuffix(".parquet"): v
                for k, v in read_json(args.dataset / "manifest.json")["counts"].items()
                if k in ("users_train.parquet", "items.parquet", "interactions.parquet")
            },
            "backend": "nccl" if one["device"]["cuda"] else "gloo",
        },
        "machine": {
            "platform": platform.platform(),
            "cpu_threads": cores,
            "omp_threads_per_process": {str(n): max(1, cores // n) for n in (1, args.nproc)},
        },
        "configs": configs,
        "ratio_samples_per_s_median": many["samples_per_s"]["median"] / one["samples_per_s"]["median"],
        "ratio_per_repeat": per_repeat,
        "loss_curves": {
            "steps": int(curve_1.size),  # the first repeat's two runs
            "max_rel_difference_first_5_steps": float(rel[:5].max()),
            "max_rel_difference": float(rel.max()),
            "note": "the same global batches; float summation order differs, AdamW amplifies it over steps",
        },
    }
    write_json(args.out, report)
    print(json.dumps({k: report[k] for k in ("ratio_samples_per_s_median", "ratio_per_repeat")}, indent=2))


if __name__ == "__main__":
    main()
