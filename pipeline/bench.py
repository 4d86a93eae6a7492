"""Stage bench: latency (p50/p95/p99), throughput, session memory and sizes of the exported towers, with
PyTorch eager measured in the same run as the baseline of every ratio. Writes bench.json."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import dc003  # noqa: F401  (offline / no-telemetry environment first: onnxruntime is imported later)
from dc003.params import load_sections
from dc003.stage import run_stage

SECTIONS = ("bench",)


def main() -> None:
    parser = argparse.ArgumentParser()
    for name in ("artifacts", "checkpoints", "dataset", "text", "out"):
        parser.add_argument(f"--{name}", type=Path, required=True)
    args = parser.parse_args(sys.argv[1:])
    params = load_sections("params.yaml", SECTIONS)
    # before torch / onnxruntime load: waiting threads sleep instead of spinning (pipeline/_phase_args.py)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from dc003.deploy.bench import run_bench, write_bench

    result = run_bench(params.bench, args.artifacts, args.checkpoints, args.dataset, args.text)
    write_bench(result, args.out)
    lat, thr = result["latency_ms"], result["throughput"]
    print(
        "bench: p50 ms: user {:.3f}, item {:.3f}, 1k users {:.1f}, 1k items {:.1f}, top-50 over {} items "
        "{:.3f}; {:,.0f} user embeddings/s ({} threads, {})".format(
            lat["single_user_embedding"]["p50"],
            lat["single_item_embedding_cached_text"]["p50"],
            lat["batch_1k_users"]["p50"],
            lat["batch_1k_items"]["p50"],
            result["settings"]["retrieval_items"],
            lat["top50_retrieval"]["p50"],
            thr["cpu_user_embeddings_per_s"],
            params.bench.threads,
            result["precision"]["serving"],
        )
    )


if __name__ == "__main__":
    run_stage("bench", main)
