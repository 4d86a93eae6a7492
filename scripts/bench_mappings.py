"""Benchmark the export's id mappings and user features at H&M size (a script, not a test): the previous
format (every id a JSON key in ``embedding_mappings.json``, ``user_features.npz`` read whole) against
format 2 (a small JSON header + memory-mapped id tables, the features memory-mapped), without running
the pipeline.

    .venv/bin/python scripts/bench_mappings.py [--repeats 5] [--skip-10m] [--work DIR]

Synthesises the mappings of 1,371,980 customers (64-hex ids, as H&M's) and 105,542 articles (10-digit
ids), and per-user features of the real shapes (4 categorical int64, 4 numerical float32, 50 history
int32, the length), writes them in both formats (format 1 with :func:`dc003.exported.write_legacy`, the
counterpart of the format-1 reader), then per repetition runs each reader in a fresh interpreter: the
load, one known and one unknown customer lookup (mappings) or one user's feature row (features), and
that process's peak RSS (VmHWM). ``old``: the readers as they were before format 2 (``Recommender`` at commit
03e37ac: the whole JSON into a dict, ``np.load`` of the npz); ``new``: :func:`dc003.exported.load_mappings`
and ``UserTable.load`` (CRC-32 checked, then memory-mapped); ``legacy_read``: the new loader on a
format-1 file (what ``dc003 update`` does with an older registry version). 10M customers: format 2 only.

Writes reports/bench_mappings.json: per reader the runs, median and p95 of each time, peak RSS, RSS
growth over an interpreter that only imported the reader, file sizes, and ratios new/old. The files were
just written, so they are read from the page cache (the machine is shared: load averages are recorded).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "scripts"))

from bench_dataset import run  # noqa: E402  (code in a fresh interpreter, its wall seconds)

import dc003  # noqa: E402,F401  (offline environment before anything else)
from dc003.deploy import layout  # noqa: E402
from dc003.exported import IdTable, write_legacy, write_mappings  # noqa: E402

H_AND_M = {"customers": 1_371_980, "articles": 105_542}
MAX_LEN = 50
N_CAT, N_NUM = 4, 4
CATEGORICAL = {  # the shape of the real header: 11 features, a few to 50 values each
    name: {f"{name} {i}": i for i in range(1, size)}
    for name, size in {
        "club_member_status": 4, "fashion_news_frequency": 4, "age_group": 6, "preferred_channel": 3,
        "product_group_name": 20, "color_group_name": 50, "garment_group_name": 22, "department_name": 30,
        "index_group_name": 6, "section_name": 25, "price_category": 10,
    }.items()
}  # fmt: skip

CHILD = """
import sys, time, json
from pathlib import Path
started = time.perf_counter()
import numpy as np
import dc003
from dc003.exported import load_mappings
from dc003.deploy.serving import UserTable
reader, what, folder, known, unknown = sys.argv[1:6]
folder = Path(folder)
imported = time.perf_counter()
out = {"import_s": imported - started}
if what == "mappings" and reader == "old":  # Recommender.__init__ / lookup at 03e37ac
    customers = dict(json.loads((folder / "embedding_mappings.json").read_text("utf-8"))["customers"])
    t = time.perf_counter()
    k = np.array([customers.get(c, -1) for c in [known]], dtype=np.int64)
    t2 = time.perf_counter()
    u = np.array([customers.get(c, -1) for c in [unknown]], dtype=np.int64)
    t3 = time.perf_counter()
elif what == "mappings":  # new, legacy_read
    customers = load_mappings(folder / "embedding_mappings.json").customers
    t = time.perf_counter()
    k = customers.lookup([known])
    t2 = time.perf_counter()
    u = customers.lookup([unknown])
    t3 = time.perf_counter()
elif what == "features":
    if reader == "old":  # UserTable.load at 03e37ac
        with np.load(folder / "user_features.npz") as z:
            users = UserTable(z["categorical"], z["numerical"], z["history"], z["history_length"])
    else:
        users = UserTable.load(folder / "user_features.npz")
    t = time.perf_counter()
    row = users.rows(np.array([int(known)]))
    t2 = time.perf_counter()
    assert row.history.shape == (1, users.history.shape[1])
    out.update(load_s=t - imported, row_ms=(t2 - t) * 1e3)
if what == "mappings":
    assert k[0] >= 0 and u[0] == -1, (k, u)
    out.update(load_s=t - imported, known_ms=(t2 - t) * 1e3, unknown_ms=(t3 - t2) * 1e3)
# this image's peak and current RSS (kB): ru_maxrss of a child also counts the parent it was forked from
status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
kb = {k: int(status[k].split()[0]) / 1024 for k in ("VmHWM", "VmRSS", "RssAnon", "RssFile")}
out.update(peak_rss_mb=kb["VmHWM"], rss_mb=kb["VmRSS"], anon_mb=kb["RssAnon"], file_mb=kb["RssFile"])
print("SUMMARY", json.dumps(out))
"""


def hex_ids(rng: np.random.Generator, n: int) -> list[str]:
    """``n`` random 64-hex ids, sorted (as the dataset's user rows are)."""
    raw = rng.integers(0, 256, (n, 32), dtype=np.uint8)
    raw = raw[np.argsort(np.ascontiguousarray(raw[:, :8]).view(">u8").ravel(), kind="stable")]
    digits = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
    chars = np.empty((n, 64), dtype=np.uint8)
    chars[:, 0::2], chars[:, 1::2] = digits[raw >> 4], digits[raw & 15]
    return [b.decode("ascii") for b in chars.view("S64").ravel().tolist()]


def article_ids(rng: np.random.Generator, n: int) -> list[str]:
    """``n`` distinct 10-digit ids with a leading zero, sorted (H&M's look like 0108775015)."""
    return [f"{x:010d}" for x in np.sort(rng.choice(900_000_000, n, replace=False) + 100_000_000)]


def write_features(path: Path, n: int, rng: np.random.Generator) -> None:
    hist = np.empty((n, MAX_LEN), dtype=np.int32)
    for s in range(0, n, 1_000_000):  # chunks: the 10M history alone is 2 GB
        hist[s : s + 1_000_000] = rng.integers(0, H_AND_M["articles"], (min(n - s, 1_000_000), MAX_LEN))
    np.savez(
        path,
        categorical=rng.integers(0, 5, (n, N_CAT)),
        numerical=rng.standard_normal((n, N_NUM)).astype(np.float32),
        history=hist,
        history_length=rng.integers(0, MAX_LEN + 1, n),
    )


def synthesise(work: Path, customers: int, old: bool, seed: int = 0) -> dict[str, Any]:
    """Both formats' files under ``work/new`` (and ``work/old``); a known customer, sizes, write times."""
    rng = np.random.default_rng(seed)
    ids = hex_ids(rng, customers)
    arts = article_ids(rng, H_AND_M["articles"])
    started = time.perf_counter()
    tables = {"articles": IdTable.build(arts, np.arange(len(arts))),
              "customers": IdTable.build(ids, np.arange(customers))}  # fmt: skip
    (work / "new").mkdir(parents=True)
    write_mappings(work / "new" / layout.MAPPINGS, CATEGORICAL, tables, "bench")
    writes = {"new": time.perf_counter() - started}
    write_features(work / "new" / layout.USER_FEATURES, customers, rng)
    if old:
        (work / "old").mkdir()
        started = time.perf_counter()
        write_legacy(work / "old" / layout.MAPPINGS, CATEGORICAL, tables, "bench")
        writes["old"] = time.perf_counter() - started
        os.link(work / "new" / layout.USER_FEATURES, work / "old" / layout.USER_FEATURES)  # the same file
    files = {
        fmt: {p.name: round(p.stat().st_size / 2**20, 2) for p in sorted((work / fmt).iterdir())}
        for fmt in ("new", "old") if (work / fmt).is_dir()
    }  # fmt: skip
    known = ids[len(ids) // 3]
    return {"known": known, "known_row": len(ids) // 3, "files_mb": files,
            "write_mappings_seconds": {k: round(v, 2) for k, v in writes.items()}}  # fmt: skip


def percentiles(values: list[float], digits: int = 4) -> dict[str, Any]:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"median": round(statistics.median(ordered), digits), "p95": round(p95, digits),
            "runs": [round(v, digits) for v in values]}  # fmt: skip


def measure(
    reader: str, what: str, folder: Path, known: str, repeats: int, base_rss: float
) -> dict[str, Any]:
    runs = [run(CHILD, reader, what, str(folder), known, "f" * 64) for _ in range(repeats)]
    peak = max(r["summary"]["peak_rss_mb"] for r in runs)
    times = [k for k in runs[0]["summary"] if k.endswith("_ms")]  # known_ms, unknown_ms / row_ms
    return {
        "load_seconds": percentiles([r["summary"]["load_s"] for r in runs]),
        **{k: percentiles([r["summary"][k] for r in runs], 3) for k in times},
        "process_seconds": percentiles([r["seconds"] for r in runs], 3),
        "peak_rss_mb": round(peak, 1),
        "rss_growth_mb": round(peak - base_rss, 1),
        # at the end: private memory, and mapped file pages (page cache, shared by every process mapping it)
        "end_rss_anon_mb": round(statistics.median(r["summary"]["anon_mb"] for r in runs), 1),
        "end_rss_file_mb": round(statistics.median(r["summary"]["file_mb"] for r in runs), 1),
    }


def ratios(new: dict[str, Any], old: dict[str, Any]) -> dict[str, float | None]:
    def r(a: float, b: float) -> float | None:
        return round(a / b, 4) if b else None

    return {
        "load_median": r(new["load_seconds"]["median"], old["load_seconds"]["median"]),
        "load_p95": r(new["load_seconds"]["p95"], old["load_seconds"]["p95"]),
        **{f"{k}_median": r(new[k]["median"], old[k]["median"]) for k in new if k.endswith("_ms")},
        "peak_rss": r(new["peak_rss_mb"], old["peak_rss_mb"]),
        "rss_growth": r(new["rss_growth_mb"], old["rss_growth_mb"]),
    }


def bench_scale(work: Path, customers: int, repeats: int, old: bool) -> dict[str, Any]:
    made = synthesise(work, customers, old)
    base = [run(CHILD, "new", "import", str(work / "new"), "", "") for _ in range(repeats)]
    base_rss = statistics.median(r["summary"]["peak_rss_mb"] for r in base)
    out: dict[str, Any] = {
        "customers": customers,
        "articles": H_AND_M["articles"],
        **{k: v for k, v in made.items() if k != "known"},
        "import_only": {"peak_rss_mb": round(base_rss, 1),
                        "import_seconds": percentiles([r["summary"]["import_s"] for r in base], 3)},
    }  # fmt: skip
    readers = ["new", "old", "legacy_read"] if old else ["new"]
    for what, key in (("mappings", made["known"]), ("features", str(made["known_row"]))):
        res = {
            reader: measure(
                reader, what, work / ("new" if reader == "new" else "old"), key, repeats, base_rss
            )
            for reader in readers
            if not (what == "features" and reader == "legacy_read")
        }
        if old:
            res["ratio_new_old"] = ratios(res["new"], res["old"])
        out[what] = res
    if old:
        sizes = made["files_mb"]
        out["files_mb"]["ratio_new_old_mappings"] = round(
            (sizes["new"][layout.MAPPINGS] + sizes["new"][layout.MAPPING_IDS])
            / sizes["old"][layout.MAPPINGS],
            4,
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--skip-10m", action="store_true", help="only H&M size")
    ap.add_argument(
        "--customers", type=int, default=H_AND_M["customers"], help="the H&M-size run's customers"
    )
    ap.add_argument("--work", type=Path, help="scratch directory (default: a temporary one, removed)")
    ap.add_argument("--out", type=Path, default=REPO / "reports" / "bench_mappings.json")
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_mappings_"))
    # the children import this checkout's dc003, not an installed one
    os.environ["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])
    report: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version(), "numpy": np.__version__,
                    "load_average_start": os.getloadavg()},
        "repeats": args.repeats,
        "page_cache": "warm (files just written); no cold-cache run (dropping caches needs root)",
    }  # fmt: skip
    try:
        report["full"] = bench_scale(work / "full", args.customers, args.repeats, old=True)
        shutil.rmtree(work / "full")
        if not args.skip_10m:
            report["10m"] = bench_scale(work / "10m", 10_000_000, max(3, args.repeats // 2), old=False)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    report["machine"]["load_average_end"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: report[k] for k in ("full", "10m") if k in report}, indent=1)[:6000])


if __name__ == "__main__":
    main()
