"""Stage dataset: the DC-002 build (clean by the contract's rules, dense indices, time splits, features
as of each cutoff, history slices, encodings, manifest); logic in :mod:`dc003.data.build`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import dc003  # noqa: F401  (offline / no-telemetry environment first)
from dc003.params import load_sections
from dc003.stage import run_stage

SECTIONS = ("dataset",)


def main() -> None:
    from dc003.contracts import DC002_PATH, load_dc002, load_dc003
    from dc003.data.build import BuildSettings, build_dataset
    from dc003.data.ingest import raw_facts
    from dc003.io import sha256_file
    from dc003.params.profiles import choose_profile

    parser = argparse.ArgumentParser(prog="python -m pipeline.dataset")
    parser.add_argument("--raw", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(sys.argv[1:])
    # the params profile for this kind of data (e.g. params/kaggle-small.yaml), decided here from the raw
    # inputs and recorded in the manifest, where every later stage reads it
    profile = choose_profile(*raw_facts(args.raw))
    p = load_sections("params.yaml", SECTIONS, profile=profile).dataset
    settings = BuildSettings(p.max_history, p.train_window_days, p.popularity_window_days)
    manifest = build_dataset(
        args.raw,
        args.out,
        load_dc002(),
        load_dc003(),
        settings,
        contract_sha256=sha256_file(DC002_PATH),
        params_profile=profile,
    )
    raw = manifest["raw"]
    rejected = ", ".join(f"{name} {info['rejected']}" for name, info in raw.items())
    extra = "; ".join(
        f"{info['file']}: {', '.join(info['extra_columns'])}"
        for info in raw.values()
        if info["extra_columns"]
    )
    counts = manifest["counts"]
    print(
        f"dataset: {counts['interactions.parquet']:,} interactions, {counts['users_train.parquet']:,} users, "
        f"{counts['items.parquet']:,} items; quarantined: {rejected}; "
        + (f"extra columns ignored: {extra}; " if extra else "")
        + (f"params profile {profile} applied; " if profile else "")
        + f"{manifest['build_seconds']} s -> {args.out}"
    )


if __name__ == "__main__":
    run_stage("dataset", main)
