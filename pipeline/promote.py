"""Stage promote: registers the dvc.yaml model artifact with GTO, only when every gate passes.

The gates are compared again here (cheap, and they must describe exactly the files being promoted).
A failing gate is a decision, not a crash: no git commit and no GTO tag are created (the versions
already registered stay as they were), the refusal and the failing gates are recorded in the decision
file (a DVC metric) and printed, and the stage exits 0 so that `dvc exp run` still records the
experiment. Enforcement for CI and release scripts is `dc003 gates check` / `dc003 registry promote`,
which exit 1 on a refusal. A passing model is tagged ``two-tower@vX.Y.Z`` and ``two-tower#prod#N``
(see dc003.registry for which commit the tag points at); no git-ignored folder holds the versions.
The tags are git's, not DVC outputs: this stage's only output is the decision file.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import dc003  # noqa: F401  (offline / no-telemetry environment first)
from dc003.stage import run_stage

SECTIONS = ("paths",)  # the gates resolve the measured files from params.yaml paths


def main() -> None:
    from dc003.io import write_json
    from dc003.registry import promote_project

    parser = argparse.ArgumentParser(prog="python -m pipeline.promote")
    parser.add_argument("--decision", type=Path, required=True, help="decision record (a DVC metric)")
    parser.add_argument("--stage", default="prod", help="GTO stage assigned to a promoted version")
    args = parser.parse_args(sys.argv[1:])
    decision = promote_project(Path.cwd(), stage=args.stage)
    write_json(args.decision, decision.model_dump(mode="json"))
    print(f"promote: {decision.message}", file=sys.stdout if decision.promoted else sys.stderr)


if __name__ == "__main__":
    run_stage("promote", main)
