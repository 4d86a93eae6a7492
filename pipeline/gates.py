"""Stage gates: every gate of gates/promotion.yaml compared on the measured values (evaluate, bench,
export, training) and recorded as a DVC metric (JSON) plus a pull-request comment (Markdown).

This stage records; it never blocks (a failing gate is a result worth seeing in `dvc exp show`).
Enforcement is the `promote` stage's and `dc003 gates check`'s job: both exit non-zero on a failure.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import dc003  # noqa: F401  (offline / no-telemetry environment first)
from dc003.stage import run_stage

SECTIONS = ("paths",)  # run_gates resolves the measured files from params.yaml paths


def main() -> None:
    from dc003.gates import run_gates
    from dc003.gates.render import print_table, to_markdown
    from dc003.io import write_json, write_text

    parser = argparse.ArgumentParser(prog="python -m pipeline.gates")
    parser.add_argument("--out", type=Path, required=True, help="JSON report (a DVC metric)")
    parser.add_argument("--markdown", type=Path, required=True, help="Markdown report")
    args = parser.parse_args(sys.argv[1:])
    report = run_gates()
    write_json(args.out, report.model_dump(mode="json"))
    write_text(args.markdown, to_markdown(report))
    print_table(report)


if __name__ == "__main__":
    run_stage("gates", main)
