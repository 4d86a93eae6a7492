"""Stage phase_4: embedding stabilisation (positive-pair consistency, EMA of both towers).

Writes the contract's checkpoint artifacts (best_model.pt = the EMA weights, user_tower.pt,
item_tower.pt, optimizer.pt), the architecture-validation record and the training history.
"""

from __future__ import annotations

import sys
from pathlib import Path

import dc003  # noqa: F401  (offline / no-telemetry environment first)
from dc003.params import dataset_profile, load_sections
from dc003.stage import run_stage

SECTIONS = ("seed", "phase_4", "train")


def main() -> None:
    from pipeline._phase_args import cpu_threads_env, on_processes, phase_paths, report

    cpu_threads_env()  # before torch loads
    from dc003.train.run import run_phase_4

    paths, args = phase_paths(sys.argv[1:], needs_input=True, extra=("checkpoints", "reports", "metrics"))
    params = load_sections("params.yaml", SECTIONS, profile=dataset_profile(paths.dataset_dir))
    if on_processes(params, "phase_4"):
        return
    summary = run_phase_4(
        params.seed,
        params.phase_4,
        paths,
        checkpoints_dir=args.checkpoints,
        reports_dir=args.reports,
        metrics_dir=args.metrics,
        dc003_path=Path("contracts/dc003.yaml"),
        dc002_path=Path("contracts/dc002.yaml"),
    )
    report(summary)


if __name__ == "__main__":
    run_stage("phase_4", main)
