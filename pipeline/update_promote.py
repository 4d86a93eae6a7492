"""Stage update_promote: the registry's promotion of the incremental update's folder (GTO artifact
``two-tower-update``), only when every gate passes on the update's own measured files. A separate stage
for the same reason as ``promote``: the tag must resolve to files ``dvc.lock`` already records. A refusal
is a recorded decision (exit 0, no tag); ``dc003 update`` exits 1 on one."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import dc003  # noqa: F401  (offline / no-telemetry environment first)
from dc003.params import load_sections
from dc003.stage import run_stage

SECTIONS = ("paths",)


def main() -> None:
    from dc003.io import write_json
    from dc003.update.promote import promote_update

    parser = argparse.ArgumentParser(prog="python -m pipeline.update_promote")
    parser.add_argument("--decision", type=Path, required=True, help="decision record (a DVC metric)")
    args = parser.parse_args(sys.argv[1:])
    decision = promote_update(Path.cwd(), load_sections("params.yaml", SECTIONS).paths)
    write_json(args.decision, decision.model_dump(mode="json"))
    print(f"update_promote: {decision.message}", file=sys.stdout if decision.promoted else sys.stderr)


if __name__ == "__main__":
    run_stage("update_promote", main)
