"""The whole chain at full H&M size (a script, not a test): every stage of dvc.yaml through ``promote``,
each run by DVC in its own process, measured, in a checkout whose params say ``data.scale: full``.

    .venv/bin/python scripts/scale_full.py --workdir /tmp/full/repo [--out reports/scale_full.json]

``--workdir`` is a git checkout of this repository (``git clone``) with ``data.scale: full`` in its
params.yaml (``--prepare`` clones this repository there and sets it). The budget knobs a 2-core machine
needs at that size come from the declared params profile ``params/full-scale.yaml``, which the dataset
stage applies by itself above its customer count (``dc003 params check`` lists it). Per stage the JSON
holds the wall time, CPU time and peak RSS of ``dvc repro -s STAGE`` and everything under it (os.wait4 of
the DVC process: the stage's own Python process included), the load average before and after (the
machine may be shared), and the output sizes DVC recorded in dvc.lock. After ``promote`` it adds the
evaluation's table of the two-tower and every baseline (metrics/evaluation_results.json of the run), the
gates, and ``dc003 recommend`` timed in fresh processes for a known and an unknown customer. Re-running
resumes: stages already measured whose outputs DVC still finds up to date are kept.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
# dvc.yaml's chain through promote (update / update_promote are the incremental path, not this chain)
STAGES = (
    "raw", "dataset", "validate", "text_embed", "phase_1", "phase_2", "phase_3", "phase_4",
    "evaluate", "export", "bench", "gates", "promote",
)  # fmt: skip
RSS_LIMIT_GB = 16.0  # issue 15: no stage may exceed it on the 24 GB machine


def _env() -> dict[str, str]:
    from dc003._env import OFFLINE_ENV

    env = {**os.environ, **OFFLINE_ENV}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def measure(cmd: list[str], cwd: Path, log: Path, stdout: Path | None = None) -> dict[str, Any]:
    """Run ``cmd`` (its output appended to ``log``, or its stdout written to ``stdout``); wall and CPU
    seconds and peak RSS of it and every process it waited for."""
    load = os.getloadavg()
    started = time.perf_counter()
    with log.open("ab") as err, stdout.open("wb") if stdout else log.open("ab") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, env=_env(), stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
    return {
        "seconds": round(time.perf_counter() - started, 1),
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 1),
        "peak_rss_gb": round(usage.ru_maxrss * 1024 / 1e9, 3),  # KiB on Linux
        "exit_code": os.waitstatus_to_exitcode(status),
        "load_average_before": [round(x, 2) for x in load],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }


def outputs(workdir: Path, stage: str) -> dict[str, int]:
    """Bytes of each output of ``stage`` as dvc.lock records them."""
    lock = yaml.safe_load((workdir / "dvc.lock").read_text()) or {}
    outs = lock.get("stages", {}).get(stage, {}).get("outs", [])
    return {o["path"]: int(o.get("size", 0)) for o in outs}


def up_to_date(workdir: Path, stage: str) -> bool:
    proc = subprocess.run(
        ["dvc", "status", "--json", stage], cwd=workdir, env=_env(), capture_output=True, text=True
    )
    return proc.returncode == 0 and json.loads(proc.stdout or "{}") == {}


def recommend_times(workdir: Path, log: Path, repeats: int = 3) -> dict[str, Any]:
    """``dc003 recommend`` for a known and an unknown customer, each in a fresh process."""
    import polars as pl

    dataset = workdir / "data/dataset"
    # a customer of the test week with the longest purchase history before it (the most history to read)
    buyer = (
        pl.scan_parquet(dataset / "interactions.parquet")
        .filter(pl.col("split") == "test")
        .select(pl.col("user_idx").sort_by(pl.col("hist_end") - pl.col("hist_start")).last())
        .collect()
        .item()
    )
    users = pl.scan_parquet(dataset / "users_test.parquet").filter(pl.col("user_idx") == buyer)
    known = str(users.select("customer_id").collect().item())
    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="scale_full_") as tmp:
        replies = Path(tmp)
        for name, customer in (("known", known), ("unknown", "not-a-customer-of-this-dataset")):
            runs = []
            reply_file = replies / f"{name}.json"
            for _ in range(repeats):
                cmd = ["dc003", "recommend", "--customer", customer, "--k", "12", "--json"]
                runs.append(measure(cmd, workdir, log, stdout=reply_file))
                if runs[-1]["exit_code"] != 0:
                    raise SystemExit(f"dc003 recommend failed for the {name} customer: see {log}")
            reply = json.loads(reply_file.read_text())
            secs = sorted(r["seconds"] for r in runs)
            result[name] = {
                "customer_id": customer,
                "cold_start": reply["cold_start"],
                "top_3": [item["article_id"] for item in reply["items"][:3]],
                "seconds_median": secs[len(secs) // 2],
                "seconds_max": secs[-1],
                "peak_rss_gb": max(r["peak_rss_gb"] for r in runs),
            }
    return result


def quality(workdir: Path) -> dict[str, Any]:
    """The evaluation's test-week table: two-tower and every baseline on the same users."""
    ev = json.loads((workdir / "metrics/evaluation_results.json").read_text())
    setup = ev["setup"]
    return {
        "users": ev["users"],
        "buyers_in_test_week": setup.get("buyers"),
        "max_users": setup.get("max_users"),
        "models": ev["models"],
        "intervals": ev["intervals"],
        "paired_two_tower_minus": ev["paired"],
        "gates": [
            {k: g[k] for k in ("name", "observed", "threshold", "status")}
            for g in json.loads((workdir / "metrics/gates.json").read_text())["gates"]
        ],
    }


def data_facts(workdir: Path) -> dict[str, Any]:
    """What the run ran on: the dataset manifest's row counts, raw rows read, and the profile it chose."""
    manifest = json.loads((workdir / "data/dataset/manifest.json").read_text())
    return {
        "params_profile": manifest.get("params_profile"),
        "raw_rows_read": {name: info["rows_read"] for name, info in manifest["raw"].items()},
        "dataset_rows": manifest["counts"],
        "splits": {name: split["cutoff_date"] for name, split in manifest["splits"]["splits"].items()},
    }


def prepare(workdir: Path) -> None:
    subprocess.run(["git", "clone", "-q", str(REPO), str(workdir)], check=True)
    params = workdir / "params.yaml"
    text = params.read_text().replace("  scale: default ", "  scale: full ", 1)
    params.write_text(text)
    # outputs of gigabytes: link them into the cache instead of copying (this checkout only)
    subprocess.run(["dvc", "config", "--local", "cache.type", "hardlink,symlink"], cwd=workdir, check=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", type=Path, required=True)
    ap.add_argument("--out", type=Path, default=REPO / "reports/scale_full.json")
    ap.add_argument("--prepare", action="store_true", help="git clone this repository into --workdir first")
    ap.add_argument("--until", choices=STAGES, default="promote", help="stop after this stage")
    ap.add_argument("--note", action="append", default=[], help="a line for the report's notes")
    args = ap.parse_args()
    workdir = args.workdir.resolve()
    if args.prepare:
        prepare(workdir)
    scale = yaml.safe_load((workdir / "params.yaml").read_text())["data"]["scale"]
    if scale != "full":
        raise SystemExit(f"{workdir / 'params.yaml'}: data.scale is {scale!r}; this script runs 'full'")
    report: dict[str, Any] = json.loads(args.out.read_text()) if args.out.is_file() else {}
    report.setdefault("stages", {})
    report["notes"] = [*report.get("notes", []), *args.note]
    report["machine"] = {
        "cpus": os.cpu_count(),
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }
    report["commit"] = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=workdir, capture_output=True, text=True
    ).stdout.strip()
    log = args.out.with_suffix(".log")
    for stage in STAGES[: STAGES.index(args.until) + 1]:
        if stage in report["stages"] and up_to_date(workdir, stage):
            print(f"{stage}: up to date, kept", flush=True)
            continue
        print(f"{stage}: running", flush=True)
        row = measure(["dvc", "repro", "-s", stage], workdir, log)
        row["outputs_bytes"] = outputs(workdir, stage)
        report["stages"][stage] = row
        _write(args.out, report)
        print(f"{stage}: {row['seconds']} s, peak {row['peak_rss_gb']} GB", flush=True)
        if row["exit_code"] != 0:
            raise SystemExit(f"{stage} failed (exit {row['exit_code']}): see {log}")
        if stage == "dataset":
            report["data"] = data_facts(workdir)
    if "data" not in report and (workdir / "data/dataset/manifest.json").is_file():
        report["data"] = data_facts(workdir)
    if args.until == "promote":
        report["quality"] = quality(workdir)
        report["recommend"] = recommend_times(workdir, log)
    stages = report["stages"].values()
    report["summary"] = {
        "total_seconds": round(sum(r["seconds"] for r in stages), 1),
        "max_peak_rss_gb": max(r["peak_rss_gb"] for r in stages),
        "rss_limit_gb": RSS_LIMIT_GB,
        "every_stage_under_limit": all(r["peak_rss_gb"] <= RSS_LIMIT_GB for r in stages),
    }
    _write(args.out, report)


def _write(path: Path, report: dict[str, Any]) -> None:
    path.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
