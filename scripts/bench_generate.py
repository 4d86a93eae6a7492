"""Benchmark the synthetic H&M-layout generator and check its hidden signal.

    python scripts/bench_generate.py               # default scale, 3 runs
                                                   # -> reports/bench_generate_default.json
    python scripts/bench_generate.py --scale full  # full scale once, plus the default runs
                                                   # -> reports/bench_generate_full.json

Each generation runs in its own process, so its peak RSS (``resource`` ru_maxrss) is its own.
The baseline measured in the same run is a plain copy of the files written (the disk floor):
``ratio_to_copy`` says how many times that bare write cost the whole generation takes.
``signal_sanity`` scores, on the default scale's final 7 days, the oracle's top-k lists and a few
baselines (last-week popularity, repurchase, ALS, age-segment popularity) against what was bought.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

import dc003  # noqa: F401  (offline environment first)

REPO = Path(__file__).resolve().parents[1]


def _child(scale: str, out_dir: str, seed: int) -> None:
    from dc003.data.synthetic import generate_hm_layout, scale_preset

    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    report = generate_hm_layout(Path(out_dir), scale_preset(scale), seed=seed)  # type: ignore[arg-type]
    seconds = time.perf_counter() - t0
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = usage.ru_utime + usage.ru_stime - cpu0.ru_utime - cpu0.ru_stime
    result = {
        "seconds": seconds,
        # CPU seconds: on a shared machine wall time also counts other processes' load
        "cpu_seconds": cpu,
        "load_average_1m": [load, os.getloadavg()[0]],
        "peak_rss_bytes": usage.ru_maxrss * 1024,  # Linux reports KiB
        "report": report,
    }
    print(json.dumps(result))


def run_once(scale: str, out_dir: Path, seed: int) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", scale, str(out_dir), str(seed)],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def copy_seconds(src: Path) -> float:
    """Time to copy every file the generator wrote (same disk, same run): the I/O floor."""
    with tempfile.TemporaryDirectory(dir=src.parent) as tmp:
        t0 = time.perf_counter()
        for f in sorted(src.iterdir()):
            shutil.copyfile(f, Path(tmp) / f.name)
        return time.perf_counter() - t0


def _stats(values: list[float]) -> dict[str, float]:
    arr = np.asarray(values, dtype=np.float64)
    return {"median": float(np.median(arr)), "p95": float(np.percentile(arr, 95)), "min": float(arr.min()),
            "max": float(arr.max()), "n": int(arr.size)}  # fmt: skip


def bench_scale(scale: str, repeats: int, workdir: Path, seed: int) -> dict[str, Any]:
    runs = []
    copies = []
    out_dir = workdir / scale
    for _ in range(repeats):
        shutil.rmtree(out_dir, ignore_errors=True)
        runs.append(run_once(scale, out_dir, seed))
        copies.append(copy_seconds(out_dir))
    seconds = [r["seconds"] for r in runs]
    return {
        "scale": scale,
        "seconds": _stats(seconds),
        "cpu_seconds": _stats([r["cpu_seconds"] for r in runs]),
        "load_average_1m": [r["load_average_1m"] for r in runs],
        "peak_rss_bytes": _stats([r["peak_rss_bytes"] for r in runs]),
        "baseline_copy_seconds": _stats(copies),
        "ratio_to_copy": float(np.median(seconds) / np.median(copies)),
        "bytes_written": {f.name: f.stat().st_size for f in sorted(out_dir.iterdir())},
        "report": runs[-1]["report"],
    }


def signal_sanity(data_dir: Path, *, days: int = 7, k: int = 50, ndcg_k: int = 10) -> dict[str, Any]:
    """Score the oracle and simple baselines on the final ``days`` days' buyers."""
    import polars as pl

    from dc003.scoring import baselines
    from dc003.scoring.metrics import ndcg_at_k, recall_at_k

    arts = pl.read_csv(
        data_dir / "articles.csv", columns=["article_id"], schema_overrides={"article_id": pl.String}
    )
    custs = pl.read_csv(data_dir / "customers.csv", columns=["customer_id", "age"])
    tx = pl.read_csv(data_dir / "transactions_train.csv", schema_overrides={"article_id": pl.String})
    art_idx = dict(zip(arts["article_id"].to_list(), range(arts.height), strict=True))
    cust_idx = dict(zip(custs["customer_id"].to_list(), range(custs.height), strict=True))
    item = np.array([art_idx.get(a, -1) for a in tx["article_id"].to_list()], dtype=np.int64)
    user = np.array([cust_idx.get(c, -1) for c in tx["customer_id"].to_list()], dtype=np.int64)
    epoch = date(1970, 1, 1)
    day = tx["t_dat"].str.to_date().to_numpy().astype("datetime64[D]").astype(np.int64)
    known = (item >= 0) & (user >= 0)
    item, user, day = item[known], user[known], day[known]
    cutoff = int(day.max()) - days + 1
    test = day >= cutoff
    users = np.unique(user[test])
    truth_pairs = np.unique(user[test] * arts.height + item[test])
    t_user, t_item = np.divmod(truth_pairs, arts.height)
    splits = np.searchsorted(t_user, users, side="right")[:-1]
    truth = np.split(t_item, splits)
    warm = np.isin(users, np.unique(user[~test]))

    oracle = pl.read_parquet(data_dir / "oracle.parquet").sort(["customer_id", "rank"])
    o_user = np.array([cust_idx[c] for c in oracle["customer_id"].to_list()])
    o_item = np.array([art_idx[a] for a in oracle["article_id"].to_list()])
    width = int(oracle["rank"].to_numpy().max())
    o_rows = {u: o_item[i * width : (i + 1) * width] for i, u in enumerate(o_user[::width].tolist())}
    lists: dict[str, np.ndarray] = {
        "oracle": np.stack([o_rows[u] for u in users.tolist()])[:, :k].astype(np.int32),
    }
    train = ~test
    recent = train & (day >= cutoff - 26 * 7)
    n_items = arts.height
    lists["popularity_last_week"] = baselines.popularity_last_week(
        user[train], item[train], day[train], n_items=n_items, cutoff_day=cutoff, users=users, k=k
    )
    lists["repurchase"] = baselines.repurchase(
        user[train], item[train], day[train], n_items=n_items, cutoff_day=cutoff, users=users, k=k
    )
    lists["als_26w"] = baselines.als(
        user[recent], item[recent], day[recent], n_items=n_items, cutoff_day=cutoff, users=users, k=k
    )
    lists["age_segment_popularity"] = _segment_popularity(
        custs["age"].to_numpy(), user, item, day, cutoff, users, k
    )

    out: dict[str, Any] = {
        "cutoff": str(epoch.fromordinal(epoch.toordinal() + cutoff)),
        "n_users": int(users.size),
        "n_cold_users": int((~warm).sum()),
        "n_items": arts.height,
    }
    for name, topk in lists.items():
        rec = recall_at_k(topk, truth, k)
        ndcg = ndcg_at_k(topk, truth, ndcg_k)
        out[name] = {
            f"recall_{k}": float(np.nanmean(rec)),
            f"ndcg_{ndcg_k}": float(np.nanmean(ndcg)),
            f"recall_{k}_warm": float(np.nanmean(rec[warm])),
            f"recall_{k}_cold": float(np.nanmean(rec[~warm])) if (~warm).any() else None,
            f"coverage_{k}": float(np.unique(topk[topk >= 0]).size / arts.height),
        }
    return out


def _segment_popularity(
    age: np.ndarray,
    user: np.ndarray,
    item: np.ndarray,
    day: np.ndarray,
    cutoff: int,
    users: np.ndarray,
    k: int,
) -> np.ndarray:
    """Most bought items of the last 4 weeks among customers of the same 5-year age band: what a
    model could reach for a cold user from the age feature alone."""
    band = np.where(np.isnan(age), -1, age // 5).astype(np.int64)
    recent = (day < cutoff) & (day >= cutoff - 28)
    n_items = int(item.max()) + 1
    out = np.empty((users.size, k), dtype=np.int32)
    glob = np.argsort(-np.bincount(item[recent], minlength=n_items), kind="stable")[:k]
    for b in np.unique(band[users]):
        sel = recent & (band[user] == b)
        counts = np.bincount(item[sel], minlength=n_items)
        top = np.argsort(-counts, kind="stable")[:k] if sel.sum() >= 50 else glob
        out[band[users] == b] = top
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scale", choices=["tiny", "small", "default", "full"], default="default")
    parser.add_argument("--repeats", type=int, default=3, help="runs of the default scale")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--workdir", type=Path, default=None, help="where files are generated (deleted after)"
    )
    parser.add_argument("--child", nargs=3, metavar=("SCALE", "OUT_DIR", "SEED"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child[0], args.child[1], int(args.child[2]))
        return

    from dc003.io import write_json

    out_path = args.out or REPO / "reports" / f"bench_generate_{args.scale}.json"
    workdir = Path(tempfile.mkdtemp(prefix="bench_generate_", dir=args.workdir))
    try:
        result: dict[str, Any] = {"seed": args.seed}
        result["default"] = bench_scale("default", args.repeats, workdir, args.seed)
        result["signal_sanity_default"] = signal_sanity(workdir / "default")
        if args.scale != "default":
            result[args.scale] = bench_scale(args.scale, 1, workdir, args.seed)
        write_json(out_path, result)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(result, indent=2))
    print(f"wrote {out_path}")


if __name__ == "__main__":
    main()
