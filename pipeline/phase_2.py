"""Stage phase_2: large-batch contrastive learning (InfoNCE, in-batch + shared random negatives, logQ).

Rebuilds the model from phase_1's checkpoint alone.
"""

from __future__ import annotations

import sys
from pathlib import Path

import dc003  # noqa: F401  (offline / no-telemetry environment first)
from dc003.params import dataset_profile, load_sections
from dc003.stage import run_stage

SECTIONS = ("seed", "phase_2", "train")


def main() -> None:
    from pipeline._phase_args import cpu_threads_env, on_processes, phase_paths, report

    cpu_threads_env()  # before torch loads
    from dc003.train.run import run_phase_2

    paths, _ = phase_paths(sys.argv[1:], needs_input=True)
    params = load_sections("params.yaml", SECTIONS, profile=dataset_profile(paths.dataset_dir))
    if on_processes(params, "phase_2"):
        return
    report(run_phase_2(params.seed, params.phase_2, paths, dc002_path=Path("contracts/dc002.yaml")))


if __name__ == "__main__":
    run_stage("phase_2", main)
