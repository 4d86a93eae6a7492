"""Stage validate: Pandera + Great Expectations, both compiled from contracts/dc002.yaml, on every
DC-002 file. Writes the JSON summary (a DVC metric) and the Data Docs; exits 1 on any error-severity
failure, listing each (file, column, rows, rule). Logic in :mod:`dc003.data.validation`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import dc003  # noqa: F401  (offline / no-telemetry environment first; before great_expectations)
from dc003.stage import run_stage

SECTIONS: tuple[str, ...] = ()  # reads no params: the contracts and the dataset say everything


def main() -> None:
    from dc003.data.validation.report import validate_to

    parser = argparse.ArgumentParser(prog="python -m pipeline.validate")
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(sys.argv[1:])
    validate_to(args.dataset, args.out)


if __name__ == "__main__":
    run_stage("validate", main)
