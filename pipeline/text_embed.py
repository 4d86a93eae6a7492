"""Stage text_embed: frozen MiniLM vectors of every article's text fields, cached by text hash.

python -m pipeline.text_embed DATASET_DIR TEXT_CACHE_DIR OUT_DIR
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import dc003  # noqa: F401  (offline / no-telemetry environment first)
from dc003.params import load_sections
from dc003.stage import run_stage

SECTIONS = ("text_embed",)


def main() -> None:
    dataset_dir, cache_dir, out_dir = (Path(a) for a in sys.argv[1:4])
    params = load_sections("params.yaml", SECTIONS)
    # before torch loads: waiting OpenMP threads sleep (see pipeline/_phase_args.py: cpu_threads_env)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from dc003.text.embed import run_text_embed

    manifest = run_text_embed(
        params.text_embed,
        dataset_dir,
        cache_dir,
        out_dir,
        Path("contracts/dc003.yaml"),
        Path("contracts/dc002.yaml"),
    )
    stats = manifest["stats"]
    print(f"text_embed: {manifest['shape']} vectors; " + "; ".join(f"{k}: {v}" for k, v in stats.items()))


if __name__ == "__main__":
    run_stage("text_embed", main)
