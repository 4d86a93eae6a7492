"""Stage evaluate: the EMA checkpoint and the baselines (popularity, trending, repurchase, ALS; the oracle
on synthetic data) ranked over the whole catalogue for every test user and scored side by side;
plots and the model card. Logic in :mod:`dc003.evaluate.run`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import dc003  # noqa: F401  (offline / no-telemetry environment first)
from dc003.params import dataset_profile, load_sections
from dc003.stage import run_stage

SECTIONS = ("seed", "data", "evaluate", "serving")


def main() -> None:
    from pipeline._phase_args import cpu_threads_env

    cpu_threads_env()  # before torch loads
    from dc003.evaluate.compare import HEADLINE
    from dc003.evaluate.run import EvaluatePaths, run_evaluate

    parser = argparse.ArgumentParser(prog="python -m pipeline.evaluate")
    for name in ("checkpoint", "dataset", "text", "training-metrics", "metrics", "plots", "reports"):
        parser.add_argument(f"--{name}", type=Path, required=True)
    args = parser.parse_args(sys.argv[1:])
    params = load_sections("params.yaml", SECTIONS, profile=dataset_profile(args.dataset))
    paths = EvaluatePaths(
        checkpoint=args.checkpoint,
        dataset_dir=args.dataset,
        text_dir=args.text,
        training_metrics=args.training_metrics,
        metrics_dir=args.metrics,
        plots_dir=args.plots,
        reports_dir=args.reports,
    )
    synthetic = params.data.source == "synthetic"
    results = run_evaluate(
        params.seed, params.evaluate, params.serving, paths, dc003_path=Path("contracts/dc003.yaml"),
        synthetic_scale=params.data.scale if synthetic else None,
    )  # fmt: skip
    print(f"evaluate: {results['users']['n_users_evaluated']} test users, {results['setup']['seconds']} s")
    print(f"{'model':<12}" + "".join(f"{m:>24}" for m in HEADLINE))
    for name, metrics in results["models"].items():
        cells = "".join(f"{'n/a' if v is None else f'{v:.4f}':>24}" for v in metrics.values())
        print(f"{name:<12}{cells}")


if __name__ == "__main__":
    run_stage("evaluate", main)
