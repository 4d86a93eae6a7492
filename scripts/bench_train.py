"""Phase-2 training throughput benchmark -> reports/bench_train.json.

Measures full optimiser steps (batch building, both towers forward and backward, InfoNCE with in-batch +
shared random negatives, clipping, AdamW) at the ``phase_2`` settings of params.yaml on the DC-002
dataset of ``paths.dataset_dir`` (and the text vectors of ``paths.text_embed_dir``), with:

- ``optimized``: the training path (baskets share one user-tower row, items deduplicated, histories
  trimmed to the batch's longest and length-bucketed, numpy-mask dropout);
- ``naive``: the same model and loss with every example's history padded to 50, no bucketing and no
  deduplication (the "before" of the optimisations);
- ``bf16_autocast``: the optimized path under CPU bf16 autocast (why training runs fp32 on this CPU);
- ``cuda_fp16``: the optimized path on CUDA with fp16 autocast + grad scaler, when CUDA is present.

The achieved FLOP rate (matmul/attention FLOPs counted by ``torch.utils.flop_counter`` on the measured
batches, forward + backward) is reported as a ratio to a 2048 x 2048 fp32 ``torch.matmul`` measured in
the same run. Samples/s = training examples per second; median and p95 over the timed steps.

    python scripts/bench_train.py [--steps 30] [--warmup 5] [--out reports/bench_train.json]
                                  [--dataset DIR] [--text DIR]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the training stages (pipeline/_phase_args.py)

import numpy as np

import dc003  # noqa: F401  (offline environment before anything else loads)


def _matmul_gflops(device: Any, reps: int = 10) -> dict[str, float]:
    import torch

    n = 2048
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    times = []
    for i in range(reps + 2):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        torch.matmul(a, b)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= 2:
            times.append(time.perf_counter() - t)
    flops = 2 * n**3
    return {"median_gflops": flops / statistics.median(times) / 1e9, "best_gflops": flops / min(times) / 1e9}


def _setup(params: Any, dataset: Path, text: Path, device: Any) -> tuple[Any, Any]:
    from dc003.contracts import load_dc002, load_dc003
    from dc003.train.batches import ItemTable
    from dc003.train.negatives import log_sampling_probability
    from dc003.train.objectives import InfoNceObjective
    from dc003.train.recipes import InBatchRecipe
    from dc003.train.run import build_model

    model, data = build_model(params.seed, params.model, dataset, text, load_dc003(), load_dc002())
    config, n_items = model.config, data.n_items
    p2 = params.phase_2
    examples = {"train": data.rows("train"), "val": data.rows("val")}
    recipe = InBatchRecipe(
        data=data,
        examples=examples,
        items={s: ItemTable.periods(data, s, device) for s in ("train", "val")},
        max_len=config.user_tower.sequence.max_len,
        device=device,
        objective=InfoNceObjective(p2.temperature, p2.label_smoothing, p2.popularity_weight),
        log_q=log_sampling_probability(np.bincount(data.item[examples["train"]], minlength=n_items)),
        shared_negatives=p2.random_negatives,
    )
    return model.to(device), recipe


def _naive_batch(recipe: Any, positions: np.ndarray, rng: np.random.Generator) -> Any:
    """One tower row per example and per item slot, every history padded to max_len."""
    import torch

    from dc003.model.two_tower import UserFeatures

    _, items, labels = recipe.batch("train", positions, rng)
    rows = recipe.examples["train"][positions]
    data = recipe.data
    start, end = data.hist_start[rows], data.hist_end[rows]
    length = np.minimum(end - start, recipe.max_len)
    offsets = np.arange(recipe.max_len)
    padding = offsets[None, :] >= length[:, None]
    hist = np.where(padding, 0, data.item[np.where(padding, 0, end[:, None] - 1 - offsets[None, :])])
    f = data.features["train"]
    u = data.user[rows]
    full_users = UserFeatures(
        torch.from_numpy(f.user_cat[u]),
        torch.from_numpy(f.user_num[u]),
        torch.from_numpy(hist),
        torch.from_numpy(padding),
    )
    full_items = items.take(labels["item_rows"])
    plain = {k: v for k, v in labels.items() if k not in ("user_rows", "item_rows")}
    return full_users, full_items, plain


def _run(
    model: Any,
    recipe: Any,
    *,
    batch_size: int,
    steps: int,
    warmup: int,
    naive: bool = False,
    autocast: Any = None,
    scaler: Any = None,
    count_flops: bool = True,
) -> dict[str, Any]:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    device = next(model.parameters()).device
    model.train()
    model.objective = recipe.objective
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=1e-5)
    rng = np.random.default_rng(0)
    order = recipe.order("train", batch_size, rng)
    need = warmup + steps
    order = (order * (need // max(len(order), 1) + 1))[:need]
    times, sizes, flops = [], [], []

    def step(pos: np.ndarray) -> None:
        batch = _naive_batch(recipe, pos, rng) if naive else recipe.batch("train", pos, rng)
        users, items, labels = batch
        if device.type == "cuda":
            users = type(users)(*(t.to(device) for t in users))
            items = type(items)(*(t.to(device) for t in items))
            labels = {k: v.to(device) for k, v in labels.items()}
        ctx = autocast if autocast is not None else torch.autocast("cpu", enabled=False)
        with ctx:
            loss = model(users, items, labels)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
        else:
            loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for i, pos in enumerate(order):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        step(pos)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - t)
            sizes.append(pos.size)
    if count_flops:
        # FLOPs of the timed batches (counted in a separate, untimed pass over the same batches)
        for pos in order[warmup : warmup + min(steps, 8)]:
            counter = FlopCounterMode(display=False)
            with counter:
                step(pos)
            flops.append(counter.get_total_flops() / pos.size)
    model.objective = None
    per_sample = [t / s for t, s in zip(times, sizes, strict=True)]
    total_time, total = sum(times), sum(sizes)
    out: dict[str, Any] = {
        "steps": steps,
        "mean_batch_examples": total / len(sizes),
        "samples_per_s": {
            "overall": total / total_time,
            "median": 1.0 / statistics.median(per_sample),
            # p95 of the per-step time per sample -> the slow-tail throughput
            "p95_slow": 1.0 / float(np.percentile(per_sample, 95)),
        },
        "step_seconds": {"median": statistics.median(times), "p95": float(np.percentile(times, 95))},
    }
    if flops:
        out["flops_per_sample"] = float(np.mean(flops))
        out["achieved_gflops"] = out["flops_per_sample"] * out["samples_per_s"]["overall"] / 1e9
    return out


def main() -> None:
    import torch

    from dc003.params.full import load_params

    parser = argparse.ArgumentParser(prog="python scripts/bench_train.py")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--naive-steps", type=int, default=6)
    parser.add_argument("--out", type=Path, default=Path("reports/bench_train.json"))
    parser.add_argument("--dataset", type=Path, help="default: paths.dataset_dir of params.yaml")
    parser.add_argument("--text", type=Path, help="default: paths.text_embed_dir of params.yaml")
    args = parser.parse_args(sys.argv[1:])

    params = load_params()
    dataset = args.dataset or Path(params.paths.dataset_dir)
    text = args.text or Path(params.paths.text_embed_dir)
    threads = max(1, len(os.sched_getaffinity(0)))
    torch.set_num_threads(threads)
    cpu = torch.device("cpu")
    bs = params.phase_2.batch_size
    load_before = os.getloadavg()

    matmul = _matmul_gflops(cpu)
    model, recipe = _setup(params, dataset, text, cpu)
    optimized = _run(model, recipe, batch_size=bs, steps=args.steps, warmup=args.warmup)
    naive = _run(model, recipe, batch_size=bs, steps=args.naive_steps, warmup=1, naive=True)
    bf16 = _run(
        model,
        recipe,
        batch_size=bs,
        steps=max(3, args.steps // 5),
        warmup=1,
        autocast=torch.autocast("cpu", dtype=torch.bfloat16),
        count_flops=False,
    )
    matmul_after = _matmul_gflops(cpu)
    for r in (optimized, naive):
        if "achieved_gflops" in r:
            r["ratio_to_matmul"] = r["achieved_gflops"] / matmul["median_gflops"]

    cuda: dict[str, Any] | None = None
    if torch.cuda.is_available():
        gpu = torch.device("cuda")
        g_matmul = _matmul_gflops(gpu)
        g_model, g_recipe = _setup(params, dataset, text, gpu)
        g = _run(
            g_model,
            g_recipe,
            batch_size=bs,
            steps=args.steps,
            warmup=args.warmup,
            autocast=torch.autocast("cuda", dtype=torch.float16),
            scaler=torch.amp.GradScaler("cuda"),
        )
        g["ratio_to_matmul"] = g.get("achieved_gflops", 0.0) / g_matmul["median_gflops"]
        cuda = {"device": torch.cuda.get_device_name(0), "matmul_fp32": g_matmul, "phase_2_fp16_autocast": g}

    opt_sps = optimized["samples_per_s"]["overall"]
    report = {
        "benchmark": "phase_2 training throughput",
        "settings": {
            "batch_size": bs,
            "random_negatives": params.phase_2.random_negatives,
            "examples": int(recipe.examples["train"].size),
            "dataset_dir": str(dataset),
            "precision": "fp32",
        },
        "machine": {
            "platform": platform.platform(),
            "cpu_threads": threads,
            "torch": torch.__version__,
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
        },
        "matmul_2048_fp32": {"before": matmul, "after": matmul_after},
        "cpu": {
            "optimized": optimized,
            "naive": naive,
            "bf16_autocast": bf16,
            "speedup_optimized_vs_naive": opt_sps / naive["samples_per_s"]["overall"],
            "bf16_vs_fp32": bf16["samples_per_s"]["overall"] / opt_sps,
        },
        "cuda": cuda if cuda is not None else {"available": False, "note": "no CUDA device in this run"},
        "target_samples_per_s": 4000,
        "contract_floor_samples_per_s": 1000,
    }
    from dc003.io import write_json

    write_json(args.out, report)
    nan = float("nan")
    print(
        f"phase_2 training: {opt_sps:.0f} samples/s optimized "
        f"(naive {naive['samples_per_s']['overall']:.0f}, bf16 {bf16['samples_per_s']['overall']:.0f}); "
        f"{optimized.get('achieved_gflops', nan):.1f} GFLOP/s = "
        f"{optimized.get('ratio_to_matmul', nan):.2f} x matmul ({matmul['median_gflops']:.0f} GFLOP/s)"
        f" -> {args.out}"
    )


if __name__ == "__main__":
    main()
