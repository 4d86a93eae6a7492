"""The ``raw`` stage: the three Kaggle-layout files in ``${paths.raw_dir}``, from the synthetic generator
(``data.source: synthetic``) or copied verbatim from ``data.kaggle_dir`` (``data.source: kaggle``; CSV or
Parquet, whichever each file is). ``source.json`` records where they came from and their hashes.

The copy is deliberately verbatim: every judgement about the rows (repair, quarantine) belongs to the
dataset stage, which names the file, column, row and rule.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from dc003.contracts.dc002 import Dc002Contract
from dc003.contracts.loading import display_path
from dc003.data import layout
from dc003.data.dirs import atomic_dir
from dc003.data.ingest import locate_file
from dc003.errors import Dc003Error
from dc003.io import sha256_file, write_json
from dc003.params.data import DataParams


def make_raw(
    out_dir: str | os.PathLike[str], data: DataParams, seed: int, contract: Dc002Contract
) -> dict[str, Any]:
    """Fill ``out_dir`` (replaced atomically) with the raw inputs; returns what source.json holds plus
    ``seconds``, the generator's timing, which stays out of the file: a timing in a stage output changes its
    hash on every run, and DVC would re-run every stage downstream of identical data."""
    seconds: dict[str, float] = {}
    with atomic_dir(out_dir) as tmp:
        if data.source == "synthetic":
            from dc003.data.synthetic import generate_hm_layout, scale_preset

            report = generate_hm_layout(
                tmp, scale_preset(data.scale), seed=seed, oracle=True, oracle_days=contract.splits.test_days
            )
            timing = report.pop("seconds", {})
            seconds = {str(k): float(v) for k, v in timing.items()} if isinstance(timing, dict) else {}
            origin: dict[str, Any] = {
                "source": "synthetic",
                "scale": data.scale,
                "seed": seed,
                "report": report,
            }
        else:
            origin = {"source": "kaggle", "kaggle_dir": data.kaggle_dir}
            src = Path(data.kaggle_dir)
            if not src.is_dir():
                raise Dc003Error(f"params.yaml: data.kaggle_dir: directory {display_path(src)} not found")
            for _, spec in contract.raw.items():
                path, fmt = locate_file(src, spec.file)
                shutil.copyfile(path, tmp / f"{spec.file}.{fmt}")
        files = {
            p.name: {"bytes": p.stat().st_size, "sha256": sha256_file(p)}
            for p in sorted(tmp.iterdir())
            if p.is_file()
        }
        source = {**origin, "files": files}
        write_json(tmp / layout.RAW_SOURCE_JSON, source)
    return {**source, "seconds": seconds}
