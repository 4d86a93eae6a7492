"""Stage export: ONNX towers (FP16 + FP32), config and mappings JSON, serving features, catalogue
embeddings and FAISS index; parity with PyTorch, stability and ANN recall in export_report.json."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import dc003  # noqa: F401  (offline / no-telemetry environment first: onnxruntime is imported later)
from dc003.params import dataset_profile, load_sections
from dc003.stage import run_stage

SECTIONS = ("export", "serving")


def main() -> None:
    parser = argparse.ArgumentParser()
    for name in ("checkpoint", "dataset", "text", "out", "report"):
        parser.add_argument(f"--{name}", type=Path, required=True)
    args = parser.parse_args(sys.argv[1:])
    params = load_sections("params.yaml", SECTIONS, profile=dataset_profile(args.dataset))
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads (pipeline/_phase_args.py)
    from dc003.deploy.package import run_export

    report = run_export(
        params.export,
        params.serving,
        args.checkpoint,
        args.dataset,
        args.text,
        args.out,
        args.report,
        Path("contracts/dc003.yaml"),
    )
    p = report["parity"]
    print(
        f"export: {p['precision']} towers, parity min cosine {p['min_cosine']:.6f}, recall@50 diff "
        f"{p['recall_50_abs_diff']:.4f} ({'ok' if p['ok'] else 'FAILS the bounds'}); identical across runs "
        f"{report['stability']['identical_across_runs']}; HNSW recall@50 vs exact "
        f"{report['retrieval']['ann']['recall_50_vs_exact']:.4f}; {report['seconds']} s"
    )


if __name__ == "__main__":
    run_stage("export", main)
