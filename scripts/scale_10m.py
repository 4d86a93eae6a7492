"""10M users, measured (issue 15 item 3; a script, not a pipeline stage): user embeddings of a synthetic
users-only population computed with ONNX Runtime from the exported user tower, written to disk, stored
against the contract's "< 5GB for all embeddings", and a FAISS top-50 for a sample of them.

    .venv/bin/python scripts/scale_10m.py [--users 10000000] [--artifacts artifacts] [--scratch DIR]

Population (chunks of ``--chunk`` customers; nothing holds a Python object per user or per purchase):
the default scale's taste model (:mod:`dc003.data.synthetic_taste`: its catalogue of 6,000 articles, the
trained tower's item vocabulary) gives each chunk's customers (``build_customers`` / ``user_vectors``)
histories drawn from the generator's department softmax times its within-department article softmax,
vectorised, with the final week's popularity weights; the 4 categorical + 4 numerical features and the
history length are a bootstrap of the export's own ``user_features.npz`` rows (the default run's users).
Embeddings: :func:`dc003.deploy.serving.embed_users` with the serving user tower (``model_config.json``),
L2-normalised, appended as fp32 and fp16 ``.npy`` files under a scratch dir (removed at the end unless
``--keep``), memory-mapped back to check them and to draw the FAISS sample.

FAISS: the exported index (the 6,000 default articles, the serving score's vectors) and an exact
inner-product index over 105,542 random unit vectors (H&M's catalogue size; the item tower over a full
synthetic catalogue would need the text encoder over 105K descriptions, so random vectors stand in:
an exact flat search costs the same whatever the vectors are). Whatever ``--users`` leaves below 10M is
extrapolated linearly from the measured per-user costs; the JSON flags every figure measured or not.

Writes reports/scale_10m.json (``--out``).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "scripts"))

from bench_mappings import CATEGORICAL, article_ids  # noqa: E402

import dc003  # noqa: E402,F401  (offline environment before onnxruntime)
from dc003.data.synthetic import _rng  # noqa: E402  (the generator's own seeded streams)
from dc003.data.synthetic_catalogue import build_catalogue  # noqa: E402
from dc003.data.synthetic_config import SyntheticConfig, calendar, scale_preset  # noqa: E402
from dc003.data.synthetic_customers import build_customers  # noqa: E402
from dc003.data.synthetic_taste import Taste, build_taste, products, user_vectors  # noqa: E402
from dc003.data.synthetic_vocab import build_taxonomy  # noqa: E402
from dc003.deploy import layout  # noqa: E402
from dc003.deploy.retrieval import flat_index, read_index, search  # noqa: E402
from dc003.deploy.serving import UserTable, embed_users, serving_config, session  # noqa: E402
from dc003.deploy.timing import latency_ms  # noqa: E402
from dc003.exported import IdTable, load_mappings, write_mappings  # noqa: E402
from dc003.scoring.serving_score import normalised  # noqa: E402

TARGET_USERS = 10_000_000
FULL_ITEMS = 105_542
DIM = 128
CONTRACT_BYTES = 5 * 10**9  # "< 5GB for all embeddings" (decimal GB; 5 GiB also reported)
DRAW_BLOCK = 2048  # customers per taste matrix product (2048 x 6000 float64 = 98 MB)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def percentiles(values: list[float]) -> dict[str, float]:
    a = np.asarray(values)
    return {"p50": float(np.percentile(a, 50)), "p95": float(np.percentile(a, 95)), "n": int(a.size)}


class TasteModel:
    """The default scale's catalogue and taste model, and the item row of each of its articles."""

    def __init__(self, artifacts: Path, seed: int) -> None:
        self.cfg = scale_preset("default")
        self.cal = calendar(self.cfg)
        tax = build_taxonomy()
        self.cat = build_catalogue(self.cfg, self.cal, tax, _rng(seed, "catalogue"))
        cust = build_customers(self.cfg, self.cal, _rng(seed, "customers"))
        self.taste: Taste = build_taste(self.cfg, self.cal, tax, self.cat, cust, _rng(seed, "taste"))
        rows = load_mappings(artifacts / layout.MAPPINGS).articles.lookup(list(self.cat.article_id))
        # an export of other data (a test's tiny model) lacks these ids: they are drawn as row index mod
        # n_items instead, and counted (the default run's export maps all 6,000)
        n_items = int(json.loads((artifacts / layout.MODEL_CONFIG).read_text("utf-8"))["model"]["n_items"])
        self.unmapped = int((rows < 0).sum())
        rows = np.where(rows < 0, np.arange(rows.size) % n_items, rows)
        # articles grouped by department (as the generator's _pick_articles groups them)
        self.by_dept = np.argsort(self.cat.department, kind="stable")
        n_dept = self.taste.dept.shape[1]
        self.dept_start = np.searchsorted(self.cat.department[self.by_dept], np.arange(n_dept + 1))
        self.item_row = rows[self.by_dept]
        week = self.cal.n_blocks - 1  # the final week's popularity: histories "as of" the cutoff
        self.log_w = self.taste.log_weight[week][self.by_dept].astype(np.float32)
        self.log_mass = self.taste.log_mass[week].astype(np.float64)
        self.item_t = np.ascontiguousarray(self.taste.item[:, self.by_dept], dtype=np.float32)

    def draw(
        self, user: np.ndarray, lengths: np.ndarray, max_len: int, rng: np.random.Generator
    ) -> np.ndarray:
        """``(B, max_len)`` int32 item rows, ``lengths`` per row (0 after): each purchase a department from
        the customer's department softmax, then an article from the softmax over that department's
        articles (inverse CDF; the draws grouped by department, one matrix product per department)."""
        n_dept = self.taste.dept.shape[1]
        who, slot = np.nonzero(np.arange(max_len)[None, :] < np.asarray(lengths)[:, None])
        dept = np.empty(who.size, dtype=np.int64)
        bounds = np.searchsorted(who, np.arange(0, user.shape[0] + DRAW_BLOCK, DRAW_BLOCK))
        for b, (d0, d1) in enumerate(itertools.pairwise(bounds)):
            u = user[b * DRAW_BLOCK : (b + 1) * DRAW_BLOCK]
            logit = products(u, self.taste.dept) + self.log_mass
            p = np.exp(logit - logit.max(axis=1, keepdims=True))
            cum = np.cumsum(p, axis=1)
            cum /= cum[:, -1:]
            rows = who[d0:d1] - b * DRAW_BLOCK
            off = np.arange(u.shape[0], dtype=np.float64)[:, None]
            found = np.searchsorted((cum + off).ravel(), rng.random(rows.size) + rows)
            dept[d0:d1] = np.minimum(found - rows * n_dept, n_dept - 1)
        out = np.zeros((user.shape[0], max_len), dtype=np.int32)
        order = np.argsort(dept, kind="stable")
        cuts = np.searchsorted(dept[order], np.arange(n_dept + 1))
        u32 = np.asarray(user, dtype=np.float32)
        for c in np.flatnonzero(np.diff(cuts)):
            sel = order[cuts[c] : cuts[c + 1]]
            lo, hi = self.dept_start[c], self.dept_start[c + 1]
            logit = u32[who[sel]] @ self.item_t[:, lo:hi] + self.log_w[lo:hi]
            cum = np.cumsum(np.exp(logit - logit.max(axis=1, keepdims=True)), axis=1)
            pick = (cum < rng.random(sel.size)[:, None] * cum[:, -1:]).sum(axis=1)
            out[who[sel], slot[sel]] = self.item_row[lo + np.minimum(pick, hi - lo - 1)]
        return out


def npy_writer(path: Path, n: int, dtype: str) -> Any:
    """An open ``.npy`` file of shape ``(n, DIM)`` whose header is written; rows are appended."""
    fh = open(path, "wb")  # noqa: SIM115  (closed by the caller)
    np.lib.format.write_array_header_1_0(
        fh,
        {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": (n, DIM)},
    )
    return fh


def embed_population(args: argparse.Namespace, scratch: Path, model: TasteModel) -> dict[str, Any]:
    serving = serving_config(args.artifacts)
    sess = session(args.artifacts / serving["user_tower"], threads=args.threads)
    users = UserTable.load(args.artifacts / layout.USER_FEATURES)
    max_len = users.history.shape[1]
    rng = np.random.default_rng([args.seed, 15, 3])
    files = {dt: scratch / f"user_embeddings.{dt}.npy" for dt in ("float32", "float16")}
    fhs = {dt: npy_writer(p, args.users, dt) for dt, p in files.items()}
    phase = {"generate": 0.0, "embed": 0.0, "write": 0.0}
    batch_s: list[float] = []
    cfg_chunk = model.cfg.model_copy(update={"n_customers": args.chunk})
    started = time.perf_counter()
    try:
        for c0 in range(0, args.users, args.chunk):
            n = min(args.chunk, args.users - c0)
            t = time.perf_counter()
            cfg: SyntheticConfig = (
                cfg_chunk if n == args.chunk else model.cfg.model_copy(update={"n_customers": n})
            )
            cust = build_customers(cfg, model.cal, rng)
            taste_u = user_vectors(cfg, cust, rng)
            src = rng.integers(0, users.categorical.shape[0], n)  # bootstrap of the export's feature rows
            src.sort()
            table = users.rows(src)
            lengths = np.asarray(table.history_length, dtype=np.int64)
            history = model.draw(taste_u, lengths, max_len, rng)
            t1 = time.perf_counter()
            phase["generate"] += t1 - t
            emb = np.empty((n, DIM), dtype=np.float32)
            for b0 in range(0, n, args.batch):
                tb = time.perf_counter()
                sl = slice(b0, b0 + args.batch)
                emb[sl] = normalised(
                    embed_users(sess, table.categorical[sl], table.numerical[sl], history[sl], lengths[sl])
                )
                batch_s.append(time.perf_counter() - tb)
            t2 = time.perf_counter()
            phase["embed"] += t2 - t1
            fhs["float32"].write(emb.tobytes())
            fhs["float16"].write(emb.astype(np.float16).tobytes())
            phase["write"] += time.perf_counter() - t2
            if (c0 // args.chunk) % 5 == 0:
                done = c0 + n
                print(
                    f"{done:,} users, {time.perf_counter() - started:.0f} s, peak RSS {peak_rss_mb():.0f} MB",
                    flush=True,
                )
        t = time.perf_counter()
        for fh in fhs.values():
            fh.flush()
            os.fsync(fh.fileno())
        phase["write"] += time.perf_counter() - t
    finally:
        for fh in fhs.values():
            fh.close()
    wall = time.perf_counter() - started
    per_user = np.asarray(batch_s) / args.batch
    return {
        "files": files,
        "serving_user_tower": serving["user_tower"],
        "phase_seconds": {k: round(v, 3) for k, v in phase.items()},
        "wall_seconds": round(wall, 3),
        "users_per_s": round(args.users / phase["embed"], 1),
        "users_per_s_end_to_end": round(args.users / wall, 1),
        "batch_ms": {k: round(v * 1e3, 3) if k != "n" else v for k, v in percentiles(batch_s).items()},
        "batch_users_per_s": {
            "median": round(float(1 / np.median(per_user)), 1),
            "p95_slowest": round(float(1 / np.percentile(per_user, 95)), 1),
        },
        "max_len": max_len,
        "sess": sess,
        "users": users,
    }


def thread_baseline(args: argparse.Namespace, model: TasteModel, users: UserTable) -> dict[str, Any]:
    """The same ``--baseline-users`` users embedded with 1 and with 2 intra-op threads."""
    serving = serving_config(args.artifacts)
    rng = np.random.default_rng([args.seed, 15, 4])
    n = min(args.baseline_users, args.users)
    cust = build_customers(model.cfg.model_copy(update={"n_customers": n}), model.cal, rng)
    src = np.sort(rng.integers(0, users.categorical.shape[0], n))
    table = users.rows(src)
    lengths = np.asarray(table.history_length, dtype=np.int64)
    history = model.draw(user_vectors(model.cfg, cust, rng), lengths, users.history.shape[1], rng)
    out: dict[str, Any] = {"users": n}
    for threads in (1, 2):
        sess = session(args.artifacts / serving["user_tower"], threads=threads)
        times = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            for b0 in range(0, n, args.batch):
                sl = slice(b0, b0 + args.batch)
                embed_users(sess, table.categorical[sl], table.numerical[sl], history[sl], lengths[sl])
            times.append(time.perf_counter() - t)
        out[f"threads_{threads}"] = {
            "users_per_s_median": round(n / float(np.median(times)), 1),
            "seconds": [round(x, 3) for x in times],
        }
    base = out["threads_1"]["users_per_s_median"]
    out["ratio_threads_2_over_1"] = round(out["threads_2"]["users_per_s_median"] / base, 3)
    return out


def faiss_latency(args: argparse.Namespace, emb_file: Path) -> dict[str, Any]:
    import faiss

    faiss.omp_set_num_threads(args.threads)
    emb = np.load(emb_file, mmap_mode="r")
    rng = np.random.default_rng([args.seed, 15, 5])
    sample = np.ascontiguousarray(
        emb[np.sort(rng.choice(emb.shape[0], min(args.sample, emb.shape[0]), replace=False))]
    )
    serving = serving_config(args.artifacts)
    weight = serving.get("prior_weight")
    exported = read_index(args.artifacts / layout.INDEX)
    items = normalised(rng.standard_normal((FULL_ITEMS, DIM)).astype(np.float32))
    t = time.perf_counter()
    full = flat_index(items)
    build_s = time.perf_counter() - t
    out: dict[str, Any] = {"sample_users": int(sample.shape[0]), "k": args.k}
    for name, index, w in (("exported", exported, weight), ("flat_ip_105542_random", full, None)):
        single = latency_ms(
            lambda i, index=index, w=w: search(index, sample[i % len(sample)][None], args.k, w),
            warmup=20,
            repetitions=min(args.single_queries, len(sample)),
        )
        batches = [sample[s : s + args.query_batch] for s in range(0, len(sample), args.query_batch)]
        times = []
        for q in batches:
            t = time.perf_counter()
            _, ids = search(index, q, args.k, w)
            times.append(time.perf_counter() - t)
            assert ids.shape == (len(q), min(args.k, index.ntotal)) and (ids >= 0).all()
        out[name] = {
            "items": int(index.ntotal),
            "dim": int(index.d),
            "single_query_ms": {k: round(v, 4) if k != "n" else v for k, v in single.items()},
            "batched": {
                "batch": args.query_batch,
                "batch_ms": {k: round(v * 1e3, 3) if k != "n" else v for k, v in percentiles(times).items()},
                "per_query_ms": round(1e3 * sum(times) / len(sample), 4),
                "queries_per_s": round(len(sample) / sum(times), 1),
            },
        }
    out["flat_ip_105542_random"]["build_seconds"] = round(build_s, 3)
    out["flat_ip_105542_random"]["vectors"] = (
        "random unit vectors (exact search costs the same for any vectors)"
    )
    out["exported"]["vectors"] = (
        "the export's items.faiss (default run, serving score incl. popularity prior)"
    )
    return out


def mapping_size(n: int, scratch: Path, seed: int) -> dict[str, Any]:
    """Format-2 id mappings (:func:`dc003.exported.write_mappings`) for ``n`` 64-hex customer ids and
    105,542 article ids: the keys are built as bytes (no Python string per customer)."""
    rng = np.random.default_rng([seed, 15, 6])
    raw = np.frombuffer(rng.bytes(32 * n), dtype=np.uint8).reshape(n, 32)
    raw = raw[np.argsort(raw[:, :8].copy().view(">u8").ravel(), kind="stable")]
    keys = np.ascontiguousarray(raw).view("S32").ravel()
    arts = article_ids(rng, FULL_ITEMS)
    tables = {
        "articles": IdTable.build(arts, np.arange(len(arts))),
        "customers": IdTable(keys, np.arange(n, dtype=np.int32), "hex"),
    }
    path = scratch / layout.MAPPINGS
    t = time.perf_counter()
    write_mappings(path, CATEGORICAL, tables, "scale_10m")
    write_s = time.perf_counter() - t
    size = path.stat().st_size + path.with_suffix(".npz").stat().st_size
    return {
        "customers": n,
        "articles": FULL_ITEMS,
        "bytes": size,
        "bytes_per_added_customer": keys.dtype.itemsize + 4,
        "write_seconds": round(write_s, 3),
    }


def check_file(path: Path, n: int) -> dict[str, Any]:
    arr = np.load(path, mmap_mode="r")
    rows = np.random.default_rng(0).choice(n, min(n, 2000), replace=False)
    norms = np.linalg.norm(np.asarray(arr[np.sort(rows)], dtype=np.float32), axis=1)
    return {
        "shape": list(arr.shape),
        "dtype": str(arr.dtype),
        "bytes": path.stat().st_size,
        "payload_bytes": n * DIM * arr.dtype.itemsize,
        "sampled_norm_min": float(norms.min()),
        "sampled_norm_max": float(norms.max()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--users", type=int, default=TARGET_USERS)
    ap.add_argument("--artifacts", type=Path, default=REPO / "artifacts")
    ap.add_argument(
        "--scratch", type=Path, default=None, help="parent of the scratch dir (default: the temp dir)"
    )
    ap.add_argument("--keep", action="store_true", help="leave the scratch dir (embeddings) in place")
    ap.add_argument("--out", type=Path, default=REPO / "reports" / "scale_10m.json")
    ap.add_argument("--chunk", type=int, default=100_000, help="customers generated and embedded per chunk")
    ap.add_argument("--batch", type=int, default=4096, help="users per embed_users call (timed)")
    ap.add_argument("--threads", type=int, default=1, help="ORT intra-op threads of the main run")
    ap.add_argument("--baseline-users", type=int, default=20_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--sample", type=int, default=10_000, help="users searched in FAISS")
    ap.add_argument("--single-queries", type=int, default=2000)
    ap.add_argument("--query-batch", type=int, default=256)
    ap.add_argument("--k", type=int, default=50)
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args()
    if args.users < 1 or args.chunk < 1 or args.batch < 1:
        raise SystemExit("--users, --chunk and --batch must be positive")
    for name in (layout.MODEL_CONFIG, layout.MAPPINGS, layout.USER_FEATURES, layout.INDEX):
        if not (args.artifacts / name).is_file():
            raise SystemExit(f"{args.artifacts / name}: missing (run the export stage, or pass --artifacts)")
    load = os.getloadavg()
    scratch = Path(tempfile.mkdtemp(prefix="scale_10m_", dir=args.scratch))
    try:
        t = time.perf_counter()
        model = TasteModel(args.artifacts, args.seed)
        setup_s = time.perf_counter() - t
        run = embed_population(args, scratch, model)
        files = {dt: check_file(p, args.users) for dt, p in run["files"].items()}
        baseline = thread_baseline(args, model, run["users"])
        retrieval = faiss_latency(args, run["files"]["float32"])
        mappings = mapping_size(args.users, scratch, args.seed)
    finally:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)
    report = build_report(args, load, setup_s, model, run, files, baseline, retrieval, mappings, scratch)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n", "utf-8")
    print(json.dumps(report["at_10m"], indent=1))


def build_report(
    args: argparse.Namespace,
    load: tuple[float, float, float],
    setup_s: float,
    model: TasteModel,
    run: dict[str, Any],
    files: dict[str, Any],
    baseline: dict[str, Any],
    retrieval: dict[str, Any],
    mappings: dict[str, Any],
    scratch: Path,
) -> dict[str, Any]:
    n = args.users
    measured = n >= TARGET_USERS
    scale = TARGET_USERS / n
    header = {dt: f["bytes"] - f["payload_bytes"] for dt, f in files.items()}

    def at10(value: float, unit: str, how: str) -> dict[str, Any]:
        return {
            "value": value if measured else round(value * scale, 3),
            "unit": unit,
            "measured": measured,
            "how": "measured" if measured else how,
        }

    storage = {
        dt: {
            "value": TARGET_USERS * DIM * np.dtype(dt).itemsize + header[dt],
            "unit": "bytes",
            "measured": measured,
            "how": "measured"
            if measured
            else "exact: 10M x 128 x itemsize + the measured .npy header (appended rows, nothing else)",
        }
        for dt in files
    }
    extra = (TARGET_USERS - n) * mappings["bytes_per_added_customer"]
    map10 = {
        "value": mappings["bytes"] + max(extra, 0),
        "unit": "bytes",
        "measured": measured,
        "how": "measured"
        if measured
        else "the measured size at N + 36 bytes per further customer "
        "(a 32-byte key and an int32 row in the uncompressed npz)",
    }
    at_10m = {
        "users": TARGET_USERS,
        "storage_bytes": storage,
        "mappings_bytes": map10,
        "generate_seconds": at10(
            run["phase_seconds"]["generate"], "s", "linear from the measured per-user time"
        ),
        "embed_seconds": at10(run["phase_seconds"]["embed"], "s", "linear from the measured per-user time"),
        "write_seconds": at10(run["phase_seconds"]["write"], "s", "linear from the measured per-user time"),
        "wall_seconds": at10(run["wall_seconds"], "s", "linear from the measured per-user time"),
        "users_per_s": {
            "value": run["users_per_s"],
            "unit": "users/s",
            "measured": True,
            "how": f"measured over {n:,} users (per-user cost does not depend on N)",
        },
    }
    gb = 1e9
    contract = {
        "bar": "embedding_storage: < 5GB for all embeddings (DC-003 scalability_requirements)",
        "bar_bytes": CONTRACT_BYTES,
        "user_fp32_bytes": storage["float32"]["value"],
        "user_fp16_bytes": storage["float16"]["value"],
        "items_fp32_bytes_105542": FULL_ITEMS * DIM * 4,
        "mappings_bytes": map10["value"],
    }
    contract["total_fp32_gb"] = round(
        (contract["user_fp32_bytes"] + contract["items_fp32_bytes_105542"] + contract["mappings_bytes"]) / gb,
        3,
    )
    contract["total_fp16_gb"] = round(
        (contract["user_fp16_bytes"] + contract["items_fp32_bytes_105542"] + contract["mappings_bytes"]) / gb,
        3,
    )
    contract["fp32_under_5gb"] = contract["total_fp32_gb"] * gb < CONTRACT_BYTES
    contract["fp16_under_5gb"] = contract["total_fp16_gb"] * gb < CONTRACT_BYTES
    contract["fp32_under_5gib"] = contract["total_fp32_gb"] * gb < 5 * 2**30
    return {
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "numpy": np.__version__,
            "load_average_start": list(load),
            "load_average_end": list(os.getloadavg()),
            "nice": os.nice(0),
        },
        "users": n,
        "measured_at_10m": measured,
        "population": {
            "histories": "the default scale's taste model (6,000 articles = the trained tower's item "
            "vocabulary): per customer (build_customers + user_vectors, in chunks) draws from the department "
            "softmax x the within-department article softmax of the final week, vectorised; the same model "
            "as the generator without its visit calendar, lifecycle over past weeks or satiation",
            "features": "categorical, numerical and history length bootstrapped from the export's "
            "user_features.npz",
            "chunk": args.chunk,
            "catalogue_articles_unmapped": model.unmapped,
            "setup_seconds": round(setup_s, 3),
        },
        "embedding": {k: v for k, v in run.items() if k not in ("files", "sess", "users")},
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "files": files,
        "scratch_removed": not args.keep and not scratch.exists(),
        "ratio_to_baseline": {
            "threads": baseline,
            "fp16_over_fp32_storage": round(files["float16"]["bytes"] / files["float32"]["bytes"], 4),
        },
        "faiss": retrieval,
        "mappings_at_n": mappings,
        "at_10m": at_10m,
        "contract_5gb": contract,
    }


if __name__ == "__main__":
    main()
