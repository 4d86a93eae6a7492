"""Stage phase_1: cold-start embedding convergence (BPR with margin on random negatives).

Builds the model from contracts/dc003.yaml (towers) + contracts/dc002.yaml (which column feeds which
feature) + the `model` params + train-split statistics; the checkpoint carries the resolved config.
"""

from __future__ import annotations

import sys
from pathlib import Path

import dc003  # noqa: F401  (offline / no-telemetry environment first)
from dc003.params import dataset_profile, load_sections
from dc003.stage import run_stage

SECTIONS = ("seed", "model", "phase_1", "train")


def main() -> None:
    from pipeline._phase_args import cpu_threads_env, on_processes, phase_paths, report

    cpu_threads_env()  # before torch loads
    from dc003.train.run import run_phase_1

    paths, _ = phase_paths(sys.argv[1:], needs_input=False)
    params = load_sections("params.yaml", SECTIONS, profile=dataset_profile(paths.dataset_dir))
    if on_processes(params, "phase_1"):
        return
    summary = run_phase_1(
        params.seed,
        params.model,
        params.phase_1,
        paths,
        dc003_path=Path("contracts/dc003.yaml"),
        dc002_path=Path("contracts/dc002.yaml"),
    )
    report(summary)


if __name__ == "__main__":
    run_stage("phase_1", main)
