"""Rolling weekly folds on Kaggle-layout data: the two-tower and every baseline over the last N weeks.

One week of the H&M sample holds only about 65 buyers, so a single test week is one noisy draw; on the
synthetic default (about 1,600 buyers a week) the folds say whether a gap between two models holds from
week to week. For fold f = 0 .. N-1 this script

1. truncates the raw transactions so the data ends 7 f days before its last day (the fold's test week
   is then the f-th last week: DC-002 puts the test split on the last 7 days; val and the train window
   move back with it, so everything a fold trains on, and every baseline sees, precedes its test week),
2. builds the DC-002 dataset with :func:`dc003.data.build.build_dataset` (the dataset stage's code),
3. embeds the item texts with :func:`dc003.text.embed.run_text_embed` (a text cache shared by the folds
   makes every fold after the first cheap),
4. trains the four phases with :mod:`dc003.train.run` (the phase stages' code) and the params.yaml
   settings,
5. evaluates with :func:`dc003.evaluate.run.evaluate_checkpoint` (the evaluate stage's code): two-tower,
   popularity, trending, repurchase, ALS on the same users,

and writes a JSON (per fold and mean / std per model and metric, recall@50 per segment, and the paired
bootstrap difference two-tower minus each model) and Markdown tables next to it.
The dataset is not run through the validate stage's Great Expectations suite (the cleaning rules of
the build still apply); everything else is the pipeline's code path.

    .venv/bin/python scripts/rolling_folds.py --raw-dir ../shared/data/hm-sample --folds 4 \\
        --out reports/kaggle_rolling_folds.json [--work /tmp/folds]
    .venv/bin/python scripts/rolling_folds.py --raw-dir data/raw --folds 4 \\
        --out reports/synthetic_rolling_folds.json --text-cache data/text_cache

(The synthetic oracle ranks only the generator's last week, so it is a row of fold 0 alone.)
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import dc003  # noqa: F401  (offline / no-telemetry environment first)

METRICS = ("recall_50", "ndcg_10", "map_12", "coverage_50", "cold_start_degradation")
SEGMENTS = ("repurchases", "new_purchases", "head_items", "torso_items", "tail_items", "cold_items")


def run_fold(fold: Any, raw_dir: Path, work: Path, cache: Path, params: Any) -> dict[str, Any]:
    import pandas as pd

    from dc003.contracts import DC002_PATH, load_dc002, load_dc003
    from dc003.data.build import BuildSettings, build_dataset
    from dc003.evaluate.folds import truncate_raw
    from dc003.evaluate.run import evaluate_checkpoint
    from dc003.io import sha256_file
    from dc003.text.embed import run_text_embed
    from dc003.train.run import run_all_phases

    dc002_path, dc003_path = Path("contracts/dc002.yaml"), Path("contracts/dc003.yaml")
    root = work / f"fold_{fold.fold}"
    timings: dict[str, float] = {}
    t = time.perf_counter()
    rows = truncate_raw(raw_dir, root / "raw", fold.last_day)
    d = params.dataset
    manifest = build_dataset(
        root / "raw", root / "dataset", load_dc002(), load_dc003(),
        BuildSettings(d.max_history, d.train_window_days, d.popularity_window_days),
        contract_sha256=sha256_file(DC002_PATH),
    )  # fmt: skip
    timings["dataset"] = time.perf_counter() - t
    t = time.perf_counter()
    run_text_embed(params.text_embed, root / "dataset", cache, root / "text", dc003_path, dc002_path)
    timings["text_embed"] = time.perf_counter() - t

    t = time.perf_counter()
    seed = params.seed
    run_all_phases(params, root, dc003_path=dc003_path, dc002_path=dc002_path)
    timings["train"] = time.perf_counter() - t
    t = time.perf_counter()
    results, _ = evaluate_checkpoint(
        root / "checkpoints" / "best_model.pt", root / "dataset", root / "text", params.evaluate,
        params.serving, seed,
    )  # fmt: skip
    timings["evaluate"] = time.perf_counter() - t
    splits = pd.read_parquet(root / "dataset/interactions.parquet", columns=["split"])["split"]
    return {
        **fold.as_dict(),
        "rows": rows,
        "interactions": manifest["counts"]["interactions.parquet"],
        "train_examples": int((splits == "train").sum()),
        "test_users": results["users"]["n_users_evaluated"],
        "cold_users": results["setup"]["cold_users"],
        "models": results["models"],
        "intervals": results["intervals"],
        # recall@50 per segment (repurchases / new purchases, popularity tiers, cold items) and the
        # paired bootstrap difference two-tower minus each model on the fold's users
        "segments": {
            m: {name: seg.get(name, {}).get("recall_50", {}).get("mean") for name in SEGMENTS}
            for m, seg in results["segments"].items()
        },
        "popularity_tiers": results["setup"].get("popularity_tiers"),
        "paired": results["paired"],
        "val_chosen": {
            name: val_choice(results["serving_sweep"], name) for name in results["serving_sweep"]["knobs"]
        },
        "seconds": {k: round(v, 1) for k, v in timings.items()},
    }


def val_choice(sweep: dict[str, Any], name: str) -> dict[str, Any]:
    """The value of serving knob ``name`` that gives the best recall@50 on the fold's val week (the first
    in grid order among equals), and the fold's test week at it: what choosing the knob on each fold's
    own val week would serve (the other knobs at the run's values)."""
    val, test = sweep["knobs"][name]["val"], sweep["knobs"][name]["test"]
    best = max(range(len(val)), key=lambda i: (val[i]["recall_50"] or 0.0, -i))
    return {
        "value": val[best][name],
        "val_recall_50": val[best]["recall_50"],
        "test_recall_50": test[best]["recall_50"],
        "test_ndcg_10": test[best]["ndcg_10"],
        "run_value": sweep["chosen"][name],
    }


def _mean_std(s: dict[str, Any], sign: str) -> str:
    """``mean ± std`` of a :func:`dc003.evaluate.folds.summarise` entry (``sign`` "+": signed mean)."""
    mean, std = s.get("mean"), s.get("std")
    if mean is None:
        return "n/a"
    return f"{mean:{sign}.4f}" + ("" if std is None else f" ± {std:.4f}")


def markdown(report: dict[str, Any]) -> str:
    folds = report["folds"]
    lines = [
        f"# Rolling weekly folds: {report.get('raw_dir', report.get('kaggle_dir'))}",
        "",
        f"{len(folds)} folds; each trains on data before its test week only. Test users per fold: "
        + ", ".join(
            f"fold {f['fold']} ({f['test_start']}..{f['test_end']}): {f['test_users']}" for f in folds
        ),
        "",
        "Params: params.yaml"
        + (f" with the profile `{report['params_profile']}`" if report.get("params_profile") else "")
        + "".join(f", `{k}={v}`" for k, v in report.get("overrides", {}).items())
        + f"; training examples per fold: {', '.join(str(f.get('train_examples', '?')) for f in folds)}.",
        "",
    ]
    header = ["| model | " + " | ".join(f"fold {f['fold']}" for f in folds) + " | mean ± std |",
              "|---|" + "---|" * (len(folds) + 1)]  # fmt: skip
    for metric in METRICS:
        lines += [f"## {metric}", "", *header]
        for name, metrics in report["summary"].items():
            s = metrics.get(metric, {})
            cells = ["n/a" if v is None else f"{v:.4f}" for v in s.get("values", [])]
            lines.append(f"| {name} | " + " | ".join(cells) + f" | {_mean_std(s, '')} |")
        lines.append("")
    paired = report.get("paired_summary")
    if paired:
        lines += ["## Paired difference, two-tower minus each model (recall@50, 95 % bootstrap per fold)", "",
                  *header]  # fmt: skip
        for name, metrics in paired.items():
            cells = []
            for f in folds:
                d = f.get("paired", {}).get(name, {}).get("recall_50", {})
                cells.append("n/a" if d.get("difference") is None
                             else f"{d['difference']:+.4f} [{d['low']:+.4f}, {d['high']:+.4f}]")  # fmt: skip
            agg = _mean_std(metrics.get("recall_50", {}), "+")
            lines.append(f"| {name} | " + " | ".join(cells) + f" | {agg} |")
        lines.append("")
    chosen = [f.get("val_chosen") for f in folds]
    if all(chosen):
        title = "## Serving knobs chosen on each fold's val week (two-tower test recall@50 at that value)"
        lines += [title, "", *header]
        for name in chosen[0]:
            cells = [f"{c[name]['value']} -> {c[name]['test_recall_50']:.4f}" for c in chosen]
            tests = [c[name]["test_recall_50"] for c in chosen]
            lines.append(f"| {name} | " + " | ".join(cells) + f" | {sum(tests) / len(tests):.4f} |")
        lines.append("")
    segments = report.get("segment_summary")
    if segments:
        lines += ["## recall@50 by segment (mean over the folds)", "",
                  "| model | " + " | ".join(SEGMENTS) + " |", "|---|" + "---|" * len(SEGMENTS)]  # fmt: skip
        for name, metrics in segments.items():
            means = [metrics.get(seg, {}).get("mean") for seg in SEGMENTS]
            cells = ["n/a" if v is None else f"{v:.4f}" for v in means]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="scripts/rolling_folds.py", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--raw-dir", "--kaggle-dir", dest="raw_dir", type=Path, required=True,
        help="Kaggle-layout raw files: ../shared/data/hm-sample, or a synthetic data/raw",
    )  # fmt: skip
    parser.add_argument("--folds", type=int, default=4)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--work", type=Path, help="scratch directory (default: a new temporary one)")
    parser.add_argument("--text-cache", type=Path, help="text-vector cache shared by the folds and runs")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE",
        help="override one params key for every fold (repeatable; VALUE is read as YAML), "
        "e.g. --set dataset.train_window_days=364",
    )  # fmt: skip
    parser.add_argument(
        "--no-profile", action="store_true",
        help="params.yaml alone, without the params profile the dataset stage would apply to this data",
    )  # fmt: skip
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads (see pipeline/_phase_args.py)

    import yaml

    from dc003.evaluate.folds import last_transaction_day, plan_folds, summarise
    from dc003.io import write_json, write_text
    from dc003.params.full import load_params, with_overrides

    overrides = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--set {item!r}: expected KEY=VALUE")
        overrides[key] = yaml.safe_load(value)
    # the params profile the dataset stage would choose for these raw files (params/kaggle-small.yaml on
    # the H&M sample), then --set on top
    from dc003.data.ingest import raw_facts
    from dc003.params.full import apply_profile
    from dc003.params.profiles import choose_profile

    profile = choose_profile(*raw_facts(args.raw_dir)) if not args.no_profile else None
    params = load_params(args.params)
    if profile is not None:
        params = apply_profile(params, profile)
    params = with_overrides(params, overrides)
    work = args.work or Path(tempfile.mkdtemp(prefix="dc003-folds-"))
    cache = args.text_cache or work / "text_cache"
    last = last_transaction_day(args.raw_dir / "transactions_train.csv")
    started = time.perf_counter()
    folds = []
    for fold in plan_folds(last, args.folds):
        t = time.perf_counter()
        folds.append(run_fold(fold, args.raw_dir, work, cache, params))
        print(f"fold {fold.fold}: {folds[-1]['test_users']} test users, {time.perf_counter() - t:.0f} s; "
              + ", ".join(f"{m} recall@50 {v['recall_50']:.4f}" for m, v in folds[-1]["models"].items()),
              flush=True)  # fmt: skip
    report = {
        "raw_dir": str(args.raw_dir),
        "work_dir": str(work),
        "n_folds": args.folds,
        "exclude_purchased": params.evaluate.exclude_purchased,
        "params_profile": profile,
        "overrides": overrides,
        "seconds": round(time.perf_counter() - started, 1),
        "folds": folds,
        "summary": summarise([f["models"] for f in folds]),
        "segment_summary": summarise([f["segments"] for f in folds]),
        "paired_summary": summarise(
            [{m: {k: d[k]["difference"] for k in d} for m, d in f["paired"].items()} for f in folds]
        ),
    }
    write_json(args.out, report)
    write_text(args.out.with_suffix(".md"), markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main(sys.argv[1:])
