"""Stage raw: the Kaggle-layout input files, from the synthetic generator or a Kaggle directory
(``data.source``); logic in :mod:`dc003.data.raw`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import dc003  # noqa: F401  (offline / no-telemetry environment first)
from dc003.params import load_sections
from dc003.stage import run_stage

SECTIONS = ("seed", "data")


def main() -> None:
    from dc003.contracts import load_dc002
    from dc003.data.raw import make_raw

    parser = argparse.ArgumentParser(prog="python -m pipeline.raw")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(sys.argv[1:])
    params = load_sections("params.yaml", SECTIONS)
    source = make_raw(args.out, params.data, params.seed, load_dc002())
    files = ", ".join(f"{name} ({info['bytes']:,} bytes)" for name, info in source["files"].items())
    took = f" in {source['seconds']['total']:.1f} s" if "total" in source["seconds"] else ""
    print(f"raw: {source['source']} -> {args.out}{took}: {files}")


if __name__ == "__main__":
    run_stage("raw", main)
