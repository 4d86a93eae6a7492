"""Stage update: the daily incremental update (params ``update``; logic in :mod:`dc003.update`).

With ``update.since`` null (the default) it records that no update was asked for and trains nothing, so a
plain ``dvc repro`` on a fresh clone stays cheap. Run an update with ``dvc repro -s update update_promote``
after setting ``update.since`` (``-s``: the pipeline's phases do not re-run; the warm start is the model the
registry or ``checkpoints/`` holds), or ``dc003 update --since DATE``.
"""

from __future__ import annotations

import dc003  # noqa: F401  (offline / no-telemetry environment first)
from dc003.stage import run_stage

SECTIONS = ("seed", "paths", "update", "evaluate", "serving", "export", "bench")


def main() -> None:
    from pathlib import Path

    from pipeline._phase_args import cpu_threads_env

    cpu_threads_env()  # before torch loads
    from dc003.params import dataset_profile, load_sections
    from dc003.update.run import run_update, skip

    paths = load_sections("params.yaml", ("paths",)).paths
    params = load_sections("params.yaml", SECTIONS, profile=dataset_profile(paths.dataset_dir))
    since = params.update.since
    if since is None:
        print(f"update: {skip(Path(paths.update_dir))['note']}")
        return
    report = run_update(Path.cwd(), params, since)
    print_summary(report)


def print_summary(report: dict[str, object]) -> None:
    from dc003.update.run import summary_lines

    for line in summary_lines(report):
        print(line)


if __name__ == "__main__":
    run_stage("update", main)
