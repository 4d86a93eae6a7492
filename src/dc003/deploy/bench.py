"""The ``bench`` stage: latency, throughput, session memory and sizes of the exported towers, measured.

Every ONNX figure runs the serving graphs named in ``model_config.json`` through ONNX Runtime's CPU
provider with ``bench.threads`` intra-op threads; PyTorch eager runs the same inputs in the same process
(rebuilt from the checkpoint) and is reported as a ratio. Users are the test users with their real
history lengths (as of the test cutoff); ``full_length`` repeats the user figures with every history
50 long. Latencies are wall-clock on a possibly shared machine: compare ratios, re-run for absolutes.
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dc003.deploy import layout
from dc003.deploy.timing import latency_ms, ratio
from dc003.io import write_json

if TYPE_CHECKING:
    from dc003.params.deploy import BenchParams
    from dc003.text.embed import Encoder

BATCH = 1000
K = 50


def _mb(path: Path) -> float:
    return path.stat().st_size / 2**20


def test_users(dataset_dir: Path) -> np.ndarray:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    tab = pq.read_table(dataset_dir / "interactions.parquet", columns=["user_idx", "split"])
    users = tab.filter(pc.equal(tab.column("split"), "test")).column("user_idx").to_numpy()
    return np.unique(users.astype(np.int64))


def _take(n: int, size: int) -> np.ndarray:
    """``size`` positions of ``n`` rows (cycling when there are fewer)."""
    return np.arange(size) % max(n, 1)


def run_bench(
    params: BenchParams,
    artifacts_dir: Path,
    checkpoints_dir: Path,
    dataset_dir: Path,
    text_dir: Path,
    encoder: Encoder | None = None,
) -> dict[str, Any]:
    """All measurements as one JSON-ready dict. ``encoder`` (tests) replaces the packaged MiniLM."""
    import faiss
    import torch

    from dc003.deploy import serving
    from dc003.deploy.memory import session_memory_mb
    from dc003.deploy.retrieval import flat_index, search
    from dc003.model import checkpoint
    from dc003.text.embed import load_item_text
    from dc003.train.data import load_training_data

    threads = params.threads
    cuda = bool(torch.cuda.is_available())
    torch.set_num_threads(threads)
    faiss.omp_set_num_threads(threads)
    warm, reps = params.warmup, params.repetitions
    bwarm, breps = max(2, warm // 10), params.batch_repetitions

    config = json.loads((artifacts_dir / layout.MODEL_CONFIG).read_text(encoding="utf-8"))
    exported = config["export"]
    precisions = ["fp32"] + ["fp16"] * exported["fp16"] + ["int8"] * exported.get("int8", False)
    files = {p: layout.tower_files(p, exported["fp16"]) for p in precisions}
    serve = config["serving"]["precision"]
    pu, pi = config["serving"]["user_precision"], config["serving"]["item_precision"]
    sess = {
        p: (
            serving.session(artifacts_dir / files[p][0], threads),
            serving.session(artifacts_dir / files[p][1], threads),
        )
        for p in precisions
    }
    model, _ = checkpoint.load_model(checkpoints_dir / "best_model.pt")
    model.eval()
    data = load_training_data(dataset_dir, load_item_text(text_dir), model.config)
    users = serving.UserTable.load(artifacts_dir / layout.USER_FEATURES).rows(test_users(dataset_dir))
    full = serving.UserTable(
        users.categorical,
        users.numerical,
        users.history,
        np.full_like(users.history_length, users.history.shape[1]),
    )
    feats = data.features["test"]
    items = (feats.item_cat, feats.item_num, data.item_text)
    n_users, n_items = users.history_length.size, items[0].shape[0]
    rng = np.random.default_rng(0)
    single_users = rng.permutation(n_users)
    single_items = rng.permutation(n_items)
    batch_u = rng.permutation(_take(n_users, BATCH))
    batch_i = _take(n_items, BATCH)

    def onnx_user(table: serving.UserTable, s: Any) -> Any:
        def run(i: int) -> np.ndarray:
            one = table.rows(single_users[i % n_users : i % n_users + 1])
            return serving.embed_users(s, one.categorical, one.numerical, one.history, one.history_length)

        return run

    def onnx_user_batch(table: serving.UserTable, s: Any) -> Any:
        t = table.rows(batch_u)
        return lambda i: serving.embed_users(s, t.categorical, t.numerical, t.history, t.history_length)

    def onnx_item(s: Any) -> Any:
        return lambda i: serving.embed_items(s, *(a[single_items[i % n_items]][None] for a in items))

    def onnx_item_batch(s: Any) -> Any:
        return lambda i: serving.embed_items(s, *(a[batch_i] for a in items))

    lat: dict[str, Any] = {}
    by_precision: dict[str, Any] = {}
    for p in precisions:
        su, si = sess[p]
        figures: dict[str, Any] = {
            "single_user_embedding": latency_ms(onnx_user(users, su), warm, reps),
            "single_item_embedding_cached_text": latency_ms(onnx_item(si), warm, reps),
            "batch_1k_users": latency_ms(onnx_user_batch(users, su), bwarm, breps),
            "batch_1k_items": latency_ms(onnx_item_batch(si), bwarm, breps),
        }
        if p == pu:  # the 50-long histories only for the serving user graph (bench time)
            figures["full_length"] = {
                "single_user_embedding": latency_ms(onnx_user(full, su), warm, reps),
                "batch_1k_users": latency_ms(onnx_user_batch(full, su), bwarm, breps),
            }
        by_precision[p] = figures
    lat.update({k: v for k, v in by_precision[pu].items() if "user" in k or k == "full_length"})
    lat.update({k: v for k, v in by_precision[pi].items() if "item" in k})
    su, si = sess[pu][0], sess[pi][1]

    # including the MiniLM encoding of the item's two texts (how a brand-new article would be embedded)
    lat["single_item_embedding_with_text_encoding"] = _with_encoding(
        data, dataset_dir, items, si, single_items, warm, params.encode_repetitions, encoder
    )

    # top-50 retrieval: the real catalogue, and a synthetic one at full H&M scale
    queries = serving.embed_users(su, users.categorical, users.numerical, users.history, users.history_length)
    index = faiss.read_index(str(artifacts_dir / layout.INDEX))
    weight = config["serving"].get("prior_weight")  # the popularity prior's query coordinate (or none)
    # as served: the list's tail searched with its own prior weight (serving.tail_prior), when set
    tail = {
        "tail_weight": config["serving"].get("tail_weight"),
        "head_k": int(config["serving"].get("head_k") or 0),
    }
    lat["top50_retrieval_catalogue"] = latency_ms(
        lambda i: search(index, queries[i % n_users][None], K, weight, **tail), warm, reps
    )
    big = rng.standard_normal((params.retrieval_items, queries.shape[1])).astype(np.float32)
    big_prior = None if weight is None else np.log(rng.random(params.retrieval_items) + 1e-3)
    big_index = flat_index(big, big_prior)
    del big
    lat["top50_retrieval"] = latency_ms(
        lambda i: search(big_index, queries[i % n_users][None], K, weight, **tail), warm, reps
    )

    # PyTorch eager on the same inputs
    eager = _eager(
        model, users, full, items, single_users, single_items, batch_u, batch_i, warm, reps, bwarm, breps
    )
    ratios = {name: ratio(eager[name], lat[name]) for name in eager if name in lat}
    ratios["full_length_batch_1k_users"] = ratio(
        eager["full_length_batch_1k_users"], lat["full_length"]["batch_1k_users"]
    )

    # the largest call serving makes: USER_CHUNK users with 50-long histories (a batch runs in such chunks)
    t = full.rows(batch_u[: serving.USER_CHUNK])
    feed_u = serving.user_inputs(t.categorical, t.numerical, t.history, t.history_length)
    feed_i = {
        n: np.ascontiguousarray(a[batch_i], dtype=np.int64 if n == "categorical" else np.float32)
        for n, a in zip(layout.ITEM_INPUTS, items, strict=True)
    }
    mem_u = session_memory_mb(artifacts_dir / files[pu][0], feed_u, threads)
    mem_i = session_memory_mb(artifacts_dir / files[pi][1], feed_i, threads)
    index_mb = _mb(artifacts_dir / layout.INDEX)

    embeddings = [m.weight for m in model.modules() if isinstance(m, torch.nn.Embedding)]
    # the user tower's stored history tokens are a lookup table per item too
    embeddings.append(model.user_tower.history.item_tokens)
    vocab_bytes = sum(w.numel() * w.element_size() for w in embeddings)
    dim = model.config.embedding_dim
    sizes = {
        "pytorch_user_tower": _mb(checkpoints_dir / "user_tower.pt"),
        "pytorch_item_tower": _mb(checkpoints_dir / "item_tower.pt"),
        "pytorch_complete_model": _mb(checkpoints_dir / "best_model.pt"),
        "onnx_user_tower": _mb(artifacts_dir / layout.USER_TOWER),
        "onnx_item_tower": _mb(artifacts_dir / layout.ITEM_TOWER),
        "onnx_total": _mb(artifacts_dir / layout.USER_TOWER) + _mb(artifacts_dir / layout.ITEM_TOWER),
        "vocab_embeddings": vocab_bytes / 2**20,
        "embedding_storage": (data.n_users + data.n_items) * dim * 4 / 2**20,
    }
    return {
        "latency_ms": lat,
        "throughput": {
            "cpu_user_embeddings_per_s": BATCH / (lat["batch_1k_users"]["p50"] / 1e3),
            "cpu_item_embeddings_per_s": BATCH / (lat["batch_1k_items"]["p50"] / 1e3),
            "cpu_user_embeddings_per_s_full_length": BATCH
            / (lat["full_length"]["batch_1k_users"]["p50"] / 1e3),
            # PyTorch eager on CUDA (ONNX Runtime here is the CPU build); null without CUDA, where the gate
            # is not applicable
            "gpu_user_embeddings_per_s": _gpu_throughput(model, users, batch_u, bwarm, breps)
            if cuda
            else None,
        },
        "memory_mb": {
            "user_call_rows": int(feed_u["history"].shape[0]),
            "user_tower_session": mem_u["rss_growth_mb"],
            "item_tower_session": mem_i["rss_growth_mb"],
            "faiss_index": index_mb,
            "total": mem_u["rss_growth_mb"] + mem_i["rss_growth_mb"] + index_mb,
            "method": "RSS growth of creating a session and running its largest call in a fresh process "
            "(psutil, after importing onnxruntime + numpy): users a 64-row chunk of 50-long histories (a "
            "batch runs in such chunks), items a 1,000-row batch; total adds the flat FAISS index",
        },
        "sizes_mb": sizes,
        "artifacts_mb": {p.name: _mb(p) for p in sorted(artifacts_dir.iterdir()) if p.is_file()},
        "pytorch_eager_ms": eager,
        "onnx_speedup_vs_pytorch": ratios,
        "precision": {
            "serving": serve,
            "gates_use": f"{serve}: {files[pu][0]}, {files[pi][1]} (sizes: the contract-named "
            f"{layout.USER_TOWER}, {layout.ITEM_TOWER})",
            "by_precision": by_precision,
        },
        "device": {
            "cuda": cuda,
            "cpu": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "threads": threads,
        },
        "settings": {
            "warmup": warm,
            "repetitions": reps,
            "batch_warmup": bwarm,
            "batch_repetitions": breps,
            "encode_repetitions": params.encode_repetitions,
            "batch": BATCH,
            "test_users": n_users,
            "items": n_items,
            "retrieval_items": params.retrieval_items,
            "retrieval_note": "top50_retrieval: exact flat inner product over a random unit-vector catalogue "
            "of retrieval_items rows (the run's own catalogue is top50_retrieval_catalogue)",
            "mean_history_length": float(users.history_length.mean()),
        },
    }


def _with_encoding(
    data: Any,
    dataset_dir: Path,
    items: tuple[np.ndarray, ...],
    sess: Any,
    order: np.ndarray,
    warm: int,
    reps: int,
    encoder: Encoder | None,
) -> dict[str, float]:
    """One item from its raw texts: MiniLM on its (non-empty) texts, then the item tower."""
    import pyarrow.parquet as pq

    from dc003.deploy import serving
    from dc003.text.embed import encoder_identity, load_encoder

    encode = encoder if encoder is not None else load_encoder(encoder_identity()[1], batch_size=2)
    tab = pq.read_table(dataset_dir / "items.parquet", columns=["prod_name", "detail_desc"]).to_pydict()
    n = items[0].shape[0]

    def one(i: int) -> np.ndarray:
        row = int(order[i % n])
        texts = [tab["prod_name"][row] or "", tab["detail_desc"][row] or ""]
        vec = np.zeros((1, 2, data.item_text.shape[2]), dtype=np.float32)
        present = [j for j, t in enumerate(texts) if t]
        if present:
            vec[0, present] = encode([texts[j] for j in present])
        return serving.embed_items(sess, items[0][row][None], items[1][row][None], vec)

    return latency_ms(one, min(warm, 10), reps)


def _eager(
    model: Any,
    users: Any,
    full: Any,
    items: tuple[np.ndarray, ...],
    su: np.ndarray,
    si: np.ndarray,
    bu: np.ndarray,
    bi: np.ndarray,
    warm: int,
    reps: int,
    bwarm: int,
    breps: int,
) -> dict[str, dict[str, float]]:
    import torch

    from dc003.deploy import serving

    def feeds(table: Any, rows: np.ndarray, chunk: int) -> list[tuple[torch.Tensor, ...]]:
        t = table.rows(rows)
        order = np.argsort(t.history_length, kind="stable")
        out = []
        for s in range(0, order.size, chunk):
            f = serving.user_inputs(
                *(a[order[s : s + chunk]] for a in (t.categorical, t.numerical, t.history, t.history_length))
            )
            out.append(tuple(torch.from_numpy(f[n]) for n in layout.USER_INPUTS))
        return out

    tower_u, tower_i = model.user_tower, model.item_tower
    single_u = [feeds(users, su[i : i + 1], 1)[0] for i in range(min(su.size, 512))]
    batch_u, batch_full = feeds(users, bu, serving.USER_CHUNK), feeds(full, bu, serving.USER_CHUNK)
    ti = [torch.from_numpy(np.ascontiguousarray(a)) for a in items]
    bi_t = torch.from_numpy(bi)
    with torch.inference_mode():
        return {
            "single_user_embedding": latency_ms(lambda i: tower_u(*single_u[i % len(single_u)]), warm, reps),
            "single_item_embedding_cached_text": latency_ms(
                lambda i: tower_i(*(a[int(si[i % si.size])][None] for a in ti)), warm, reps
            ),
            "batch_1k_users": latency_ms(lambda i: [tower_u(*f) for f in batch_u], bwarm, breps),
            "full_length_batch_1k_users": latency_ms(
                lambda i: [tower_u(*f) for f in batch_full], bwarm, breps
            ),
            "batch_1k_items": latency_ms(lambda i: tower_i(*(a[bi_t] for a in ti)), bwarm, breps),
        }


def _gpu_throughput(model: Any, users: Any, rows: np.ndarray, warm: int, reps: int) -> float:
    """User embeddings per second of the PyTorch user tower on CUDA, 1,000 real test users per call."""
    import torch

    from dc003.deploy import serving

    t = users.rows(rows)
    feed = serving.user_inputs(t.categorical, t.numerical, t.history, t.history_length)
    tower = model.user_tower.to("cuda")
    args = [torch.from_numpy(feed[n]).to("cuda") for n in layout.USER_INPUTS]

    def run(i: int) -> None:
        tower(*args)
        torch.cuda.synchronize()

    with torch.inference_mode():
        stats = latency_ms(run, warm, reps)
    model.user_tower.to("cpu")
    return rows.size / (stats["p50"] / 1e3)


def write_bench(result: dict[str, Any], out: Path) -> None:
    write_json(out, result)
