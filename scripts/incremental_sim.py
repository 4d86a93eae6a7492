"""Four consecutive daily incremental updates against four full retrains, on the default synthetic data.

Timeline. DC-002 puts the test split on the data's last 7 days and val on the 7 before; training reads the
train split only. "The data ends at day d" is read the pipeline's way: the train split ends at day d (the
raw data at d + 14, the val and test weeks held out). Day d_k = L - 14 - (4 - k), k = 0 .. 4, L = the
raw data's last day; the dataset of day k is the DC-002 build (:func:`dc003.data.build.build_dataset`) of
the raw transactions cut at d_k + 14 (:func:`dc003.evaluate.folds.truncate_raw`; the generator is not
touched). So k = 4 is the default dataset itself, and each step adds one day to the train split.

For k = 1 .. 4:

* full retrain: phases 1-4 (:mod:`dc003.train.run`, params.yaml as the pipeline runs them) on dataset k;
* update: the model of day k - 1 (the full retrain of day 0 for k = 1, the previous update after that: the
  updates chain, as they would in production) fine-tuned on day d_k alone with params ``update``
  (:func:`dc003.train.update.run_update_training`, the ``dc003 update`` code);
* both, and the model of day k - 1 left as it was (stale), are scored on day d_k + 1's purchases (the first
  day of dataset k's val week: features and histories as of that cutoff) with the serving score the
  evaluation uses (:func:`dc003.evaluate.run.two_tower_top_k`): recall@50 and NDCG@10 per buyer, means, the
  paired difference update - full with a bootstrap interval over the buyers, and the number of buyers.

Times: wall seconds of the training step on each side (model and data loading included): the four phases
vs the update's fine-tune. The dataset build (shared: both need the new day's data) and the evaluation /
export / bench / gates (identical on both sides) are outside both and reported separately once
(``reports/incremental.json`` ``fixed_costs``). Runs on a shared 2-core machine: the times are indicative.

    .venv/bin/python scripts/incremental_sim.py --raw-dir data/raw --out reports/incremental.json \\
        --work /tmp/incsim --text-cache data/text_cache
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

import dc003  # noqa: F401  (offline / no-telemetry environment first)

DAYS = 4
DC002, DC003 = Path("contracts/dc002.yaml"), Path("contracts/dc003.yaml")


def build_day(k: int, last_train_day: int, raw_dir: Path, work: Path, cache: Path, params: Any) -> Path:
    """Raw cut at the day's train end + val + test days, its DC-002 dataset and text vectors."""
    from dc003.contracts import DC002_PATH, load_dc002, load_dc003
    from dc003.data.build import BuildSettings, build_dataset
    from dc003.evaluate.folds import truncate_raw
    from dc003.io import sha256_file
    from dc003.text.embed import run_text_embed

    root = work / f"day_{k}"
    if (root / "dataset" / "manifest.json").is_file() and (root / "text" / "manifest.json").is_file():
        return root
    spec = load_dc002().splits
    truncate_raw(raw_dir, root / "raw", last_train_day + spec.val_days + spec.test_days)
    d = params.dataset
    build_dataset(
        root / "raw", root / "dataset", load_dc002(), load_dc003(),
        BuildSettings(d.max_history, d.train_window_days, d.popularity_window_days),
        contract_sha256=sha256_file(DC002_PATH),
    )  # fmt: skip
    run_text_embed(params.text_embed, root / "dataset", cache, root / "text", DC003, DC002)
    shutil.rmtree(root / "raw")
    return root


def full_retrain(root: Path, params: Any) -> dict[str, Any]:
    """Phases 1-4 on the day's dataset (cached: a re-run of the script reuses the checkpoint and its time)."""
    from dc003.train.run import run_all_phases

    record = root / "full.json"
    if record.is_file() and (root / "checkpoints" / "best_model.pt").is_file():
        return dict(json.loads(record.read_text()))

    t, cpu = time.perf_counter(), time.process_time()
    run_all_phases(params, root, dc003_path=DC003, dc002_path=DC002)
    out = {
        "seconds": round(time.perf_counter() - t, 2),
        "cpu_seconds": round(time.process_time() - cpu, 2),
        "checkpoint": str(root / "checkpoints/best_model.pt"),
    }
    record.write_text(json.dumps(out))
    return out


def update(root: Path, warm: Path, since_day: int, params: Any) -> dict[str, Any]:
    from dc003.train.run import PhasePaths
    from dc003.train.update import run_update_training

    out = root / "update"
    shutil.rmtree(out, ignore_errors=True)
    paths = PhasePaths(
        dataset_dir=root / "dataset", text_dir=root / "text", out_dir=out / "phase", live_dir=out / "live",
        resume_dir=out / "resume",
    )  # fmt: skip
    t, cpu = time.perf_counter(), time.process_time()
    run = run_update_training(
        params.seed, params.update, paths, warm_start=warm, since_day=since_day, dc002_path=DC002,
        progress=False,
    )  # fmt: skip
    seconds, cpu = time.perf_counter() - t, time.process_time() - cpu
    return {
        "seconds": round(seconds, 2),
        "cpu_seconds": round(cpu, 2),
        "checkpoint": str(out / "phase" / "model.pt"),
        "examples": run.summary["update"]["examples"],
        "users": run.summary["update"]["users"],
        "train_seconds": round(run.result.train_seconds, 2),
    }


def next_day_scores(checkpoint: Path, root: Path, params: Any) -> dict[str, Any]:
    """Per-buyer recall@50 and NDCG@10 (serving score) on the first day of the dataset's val week, and on
    the whole val week (7 days: about six times the buyers, so a steadier read of the same comparison)."""
    from dc003.data.splits import day_to_date
    from dc003.evaluate.run import two_tower_top_k
    from dc003.model import checkpoint as ckpt
    from dc003.scoring.metrics import ndcg_at_k, recall_at_k
    from dc003.text.embed import load_item_text
    from dc003.train.data import SPLIT_CODES, load_training_data
    from dc003.train.validation import RetrievalSet

    model, _ = ckpt.load_model(checkpoint)
    model.eval()
    data = load_training_data(root / "dataset", load_item_text(root / "text"), model.config)
    day = data.cutoffs["val"]
    out: dict[str, Any] = {"day": day_to_date(day)}
    val = data.split == SPLIT_CODES["val"]
    for name, mask in (("next_day", val & (data.day == day)), ("next_week", val)):
        rows = np.flatnonzero(mask)
        users, first = np.unique(data.user[rows], return_index=True)
        bounds = np.r_[first, rows.size]
        truth = [np.unique(data.item[rows[bounds[i] : bounds[i + 1]]]) for i in range(users.size)]
        rset = RetrievalSet(split="val", query_rows=rows[first], users=users, truth=truth)
        top = two_tower_top_k(model, data, rset, 50, None, params.serving)
        out[name] = np.stack([recall_at_k(top, truth, 50), ndcg_at_k(top, truth, 10)], axis=1)
    return out


def paired(a: np.ndarray, b: np.ndarray, seed: int) -> dict[str, float]:
    from dc003.scoring.metrics import bootstrap_ci

    mean, low, high = bootstrap_ci(a - b, n_boot=1000, seed=seed)
    return {"mean": round(mean, 4), "low": round(low, 4), "high": round(high, 4)}


def fixed_costs() -> dict[str, Any]:
    """What both sides pay alike, measured once: the FAISS exact index rebuilt at full H&M catalogue size
    (105K items x (128 + 1 prior coordinate), random unit vectors), per rebuild."""
    from dc003.deploy.retrieval import flat_index

    rng = np.random.default_rng(0)
    emb = rng.standard_normal((105_000, 128)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    prior = rng.standard_normal(105_000).astype(np.float32)
    times = []
    for _ in range(5):
        t = time.perf_counter()
        flat_index(emb, prior)
        times.append(time.perf_counter() - t)
    return {"faiss_flat_rebuild_105k_items_s": {"median": round(float(np.median(times)), 4)}}


def main() -> None:
    from dc003.data.splits import SplitPlan, day_to_date
    from dc003.io import read_json, write_json
    from dc003.params.full import load_params

    parser = argparse.ArgumentParser(prog="scripts/incremental_sim.py")
    parser.add_argument("--raw-dir", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--text-cache", type=Path, required=True, help="text-hash cache (read and extended)")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args(sys.argv[1:])
    params = load_params(args.params)
    args.work.mkdir(parents=True, exist_ok=True)

    probe = build_day(DAYS, 10**9, args.raw_dir, args.work, args.text_cache, params)  # the whole data
    plan = SplitPlan.from_json(read_json(probe / "dataset" / "splits.json"))
    last_train = plan.ends["train"]  # d_4
    days: dict[int, Path] = {DAYS: probe}
    for k in range(DAYS):
        days[k] = build_day(k, last_train - (DAYS - k), args.raw_dir, args.work, args.text_cache, params)

    full = {k: full_retrain(days[k], params) for k in range(DAYS + 1)}
    rows, models = [], {0: Path(full[0]["checkpoint"])}
    for k in range(1, DAYS + 1):
        d = last_train - (DAYS - k)
        upd = update(days[k], models[k - 1], d, params)
        models[k] = Path(upd["checkpoint"])
        scores = {
            "update": next_day_scores(models[k], days[k], params),
            "full_retrain": next_day_scores(Path(full[k]["checkpoint"]), days[k], params),
            "stale": next_day_scores(models[k - 1], days[k], params),
        }
        row: dict[str, Any] = {
            "day": k,
            "trained_through": day_to_date(d),
            "evaluated_on": scores["update"]["day"],
            "update": upd,
            "full_retrain": {key: full[k][key] for key in ("seconds", "cpu_seconds")},
            "speedup": round(full[k]["seconds"] / upd["seconds"], 1),
            "speedup_cpu": round(full[k]["cpu_seconds"] / upd["cpu_seconds"], 1),
        }
        for window in ("next_day", "next_week"):
            per = {name: s[window] for name, s in scores.items()}
            row[window] = {
                "buyers": int(per["update"].shape[0]),
                **{name: {"recall_50": _m(v, 0), "ndcg_10": _m(v, 1)} for name, v in per.items()},
                "recall_50_gap": round(_m(per["full_retrain"], 0) - _m(per["update"], 0), 4),
                "paired_update_minus_full": {
                    "recall_50": paired(per["update"][:, 0], per["full_retrain"][:, 0], k),
                    "ndcg_10": paired(per["update"][:, 1], per["full_retrain"][:, 1], k),
                },
            }
        rows.append(row)
        print(json.dumps(rows[-1]), flush=True)
    result = {
        "note": __doc__.split("\n\n")[1].replace("\n", " ") if __doc__ else "",
        "params_update": params.update.model_dump(mode="json"),
        "day_0_full_retrain": full[0],
        "days": rows,
        "done_when": {
            "min_speedup": min(r["speedup"] for r in rows),
            "max_recall_50_gap_next_day": max(r["next_day"]["recall_50_gap"] for r in rows),
            "max_recall_50_gap_next_week": max(r["next_week"]["recall_50_gap"] for r in rows),
            "speedup_at_least_5x": all(r["speedup"] >= 5 for r in rows),
            "within_0_01_recall_50_next_day": all(r["next_day"]["recall_50_gap"] <= 0.01 for r in rows),
        },
        "fixed_costs": fixed_costs(),
    }
    write_json(args.out, result)
    args.out.with_suffix(".md").write_text(markdown(result), encoding="utf-8")
    print(json.dumps(result["done_when"]))


def markdown(result: dict[str, Any]) -> str:
    """The README table: per day, times and the next day's (and next week's) metrics of the three models."""

    def ci(p: dict[str, float]) -> str:
        return f"{p['mean']:+.4f} [{p['low']:+.4f}, {p['high']:+.4f}]"

    lines = [
        "| day | trained through | next day (buyers) | update s (CPU s) | full retrain s (CPU s) | speed-up "
        "wall / CPU | next-day recall@50 update / full / stale | next-day NDCG@10 update / full / stale | "
        "update - full recall@50, paired | next-week recall@50 update / full / stale (buyers) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["days"]:
        nd, nw = r["next_day"], r["next_week"]
        trio = [f"{nd[m]['recall_50']:.4f}" for m in ("update", "full_retrain", "stale")]
        ndcg = [f"{nd[m]['ndcg_10']:.4f}" for m in ("update", "full_retrain", "stale")]
        week = [f"{nw[m]['recall_50']:.4f}" for m in ("update", "full_retrain", "stale")]
        lines.append(
            f"| {r['day']} | {r['trained_through']} | {r['evaluated_on']} ({nd['buyers']}) | "
            f"{r['update']['seconds']:.1f} ({r['update']['cpu_seconds']:.1f}) | "
            f"{r['full_retrain']['seconds']:.0f} ({r['full_retrain']['cpu_seconds']:.0f}) | "
            f"{r['speedup']:.0f}x / {r['speedup_cpu']:.0f}x | {' / '.join(trio)} | {' / '.join(ndcg)} | "
            f"{ci(nd['paired_update_minus_full']['recall_50'])} | {' / '.join(week)} ({nw['buyers']}) |"
        )
    return "\n".join(lines) + "\n"


def _m(per_user: np.ndarray, col: int) -> float:
    vals = per_user[:, col]
    return round(float(np.nanmean(vals)), 4)


if __name__ == "__main__":
    main()
