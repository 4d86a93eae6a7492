"""Benchmark the DC-002 data stages (a script, not a test): full H&M scale build + validation, and the
default-scale data stages, each in its own process so peak RSS and CPU time are that stage's alone.

    .venv/bin/python scripts/bench_dataset.py [--raw-full DIR] [--work DIR] [--repeats N] [--skip-full]

Writes reports/bench_dataset_full.json: per measurement the runs, median, p95, peak RSS, CPU seconds, and
the ratio to a baseline measured in the same run (the I/O floor: reading the same inputs and nothing
else), plus the targets and whether they are met. The machine is shared: load averages are recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

import dc003  # noqa: E402,F401  (offline environment before anything else)

TARGETS = {
    "full_build_seconds": 300.0,
    "full_build_peak_rss_gb": 8.0,
    "full_validate_seconds": 180.0,
    "default_data_stages_seconds": 60.0,
}

GENERATE = """
import dc003, sys
from pathlib import Path
from dc003.data.synthetic import generate_hm_layout, scale_preset
generate_hm_layout(Path(sys.argv[1]), scale_preset(sys.argv[2]), seed=42, oracle=sys.argv[3] == "1")
"""
BUILD = """
import dc003, sys
from dc003.contracts import load_dc002, load_dc003
from dc003.data.build import BuildSettings, build_dataset
from dc003.params.full import load_params
p = load_params("params.yaml").dataset
m = build_dataset(sys.argv[1], sys.argv[2], load_dc002(), load_dc003(),
                  BuildSettings(p.max_history, p.train_window_days, p.popularity_window_days))
print("STEPS", __import__("json").dumps(m["build_seconds_by_step"]))
"""
VALIDATE = """
import dc003, sys, json
from pathlib import Path
from dc003.data.validation.report import check_dataset
s = check_dataset(Path(sys.argv[1]), Path(sys.argv[2]))
print("SUMMARY", json.dumps({"passed": s["passed"], "counts": s["counts"], "timing": s["timing_seconds"],
      "frames": {k: v["rows"] for k, v in s["frames"].items()}}))
"""
READ_RAW = """
import dc003, sys
from dc003.contracts import load_dc002
from dc003.data.ingest import open_inputs
inputs = open_inputs(sys.argv[1], load_dc002())
for name, source in inputs.items():
    n = sum(b.height for b in source.batches()) if name == "transactions" else source.scan().collect().height
"""
READ_DATASET = """
import dc003, sys
from pathlib import Path
import polars as pl
for path in sorted(Path(sys.argv[1]).glob("*.parquet")):
    pl.read_parquet(path).to_pandas()
"""


def run(code: str, *args: str) -> dict[str, Any]:
    """Run ``code`` in a fresh interpreter; wall seconds, CPU seconds and peak RSS of that process."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    out = proc.stdout.read() if proc.stdout else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"benchmark step failed ({args}):\n{out}")
    extra = {}
    for line in out.splitlines():
        if line.startswith(("STEPS ", "SUMMARY ")):
            key, _, payload = line.partition(" ")
            extra[key.lower()] = json.loads(payload)
    return {
        "seconds": round(wall, 3),
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 3),
        "peak_rss_gb": round(usage.ru_maxrss * 1024 / 1e9, 3),  # ru_maxrss is KiB on Linux
        **extra,
    }


def stats(runs: list[dict[str, Any]], baseline: list[dict[str, Any]]) -> dict[str, Any]:
    secs = sorted(r["seconds"] for r in runs)
    base = statistics.median(r["seconds"] for r in baseline)
    p95 = secs[min(len(secs) - 1, round(0.95 * (len(secs) - 1)))]
    return {
        "runs": runs,
        "median_seconds": round(statistics.median(secs), 3),
        "p95_seconds": round(p95, 3),
        "peak_rss_gb": max(r["peak_rss_gb"] for r in runs),
        "median_cpu_seconds": round(statistics.median(r["cpu_seconds"] for r in runs), 3),
        "baseline_median_seconds": round(base, 3),
        "ratio_to_baseline": round(statistics.median(secs) / base, 2) if base else None,
    }


def bench_scale(work: Path, scale: str, repeats: int, raw: Path | None) -> dict[str, Any]:
    raw_dir = raw or work / f"raw_{scale}"
    gen = None
    if raw is None:
        gen = [run(GENERATE, str(raw_dir), scale, "1" if scale != "full" else "0") for _ in range(repeats)]
    builds, reads, validations, dataset_reads = [], [], [], []
    for i in range(repeats):
        reads.append(run(READ_RAW, str(raw_dir)))
        builds.append(run(BUILD, str(raw_dir), str(work / f"dataset_{scale}")))
        dataset_reads.append(run(READ_DATASET, str(work / f"dataset_{scale}")))
        validations.append(run(VALIDATE, str(work / f"dataset_{scale}"), str(work / f"docs_{scale}_{i}")))
    out = {
        "scale": scale,
        "raw": str(raw_dir),
        "build": {**stats(builds, reads), "baseline": "reading the raw inputs (same parser, nothing else)"},
        "validate": {
            **stats(validations, dataset_reads),
            "baseline": "reading every dataset file into pandas",
        },
    }
    if gen is not None:
        out["generate"] = {**stats(gen, reads), "baseline": "reading the raw inputs"}
        data_stages = [
            g["seconds"] + b["seconds"] + v["seconds"]
            for g, b, v in zip(gen, builds, validations, strict=True)
        ]
        out["data_stages_seconds"] = {"runs": data_stages, "median": round(statistics.median(data_stages), 3)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--raw-full", type=Path, help="an existing full-scale raw directory (skips generation)")
    ap.add_argument("--work", type=Path, help="scratch directory (default: a temporary one)")
    ap.add_argument("--repeats", type=int, default=3, help="repetitions at default scale")
    ap.add_argument("--full-repeats", type=int, default=1, help="repetitions at full scale")
    ap.add_argument("--skip-full", action="store_true")
    ap.add_argument("--out", type=Path, default=REPO / "reports" / "bench_dataset_full.json")
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_dc002_"))
    work.mkdir(parents=True, exist_ok=True)
    import great_expectations as gx
    import pandera
    import polars as pl

    report: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "polars": pl.__version__,
            "pandera": pandera.__version__,
            "great_expectations": gx.__version__,
            "load_average_start": os.getloadavg(),
        },
        "targets": TARGETS,
        "default": bench_scale(work, "default", args.repeats, None),
    }
    if not args.skip_full:
        report["full"] = bench_scale(work, "full", args.full_repeats, args.raw_full)
    report["machine"]["load_average_end"] = os.getloadavg()
    met: dict[str, bool] = {}
    if "full" in report:
        full = report["full"]
        met["full_build_seconds"] = full["build"]["median_seconds"] <= TARGETS["full_build_seconds"]
        met["full_build_peak_rss_gb"] = full["build"]["peak_rss_gb"] <= TARGETS["full_build_peak_rss_gb"]
        met["full_validate_seconds"] = full["validate"]["median_seconds"] <= TARGETS["full_validate_seconds"]
    met["default_data_stages_seconds"] = (
        report["default"]["data_stages_seconds"]["median"] <= TARGETS["default_data_stages_seconds"]
    )
    report["targets_met"] = met
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({"targets_met": met, "out": str(args.out)}, indent=2))


if __name__ == "__main__":
    main()
