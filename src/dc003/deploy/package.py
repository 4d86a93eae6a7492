"""The ``export`` stage: ONNX towers, config and mappings, serving features, catalogue embeddings, FAISS
index, and the report the deployment gates read (parity, stability, ANN recall).

The model is rebuilt from the checkpoint alone. Parity runs on the test users (features and history as
of the test cutoff, exactly as evaluation builds them) and the whole catalogue (features as of the test
cutoff); the ONNX side reads the user inputs back from the exported ``user_features.npz``, so the serving
features are checked too, not only the graphs.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dc003.deploy import layout
from dc003.io import atomic_path, sha256_file, write_json

if TYPE_CHECKING:
    from dc003.deploy.serving import UserTable
    from dc003.params.deploy import ExportParams, ServingParams
    from dc003.train.data import TrainingData

SERVING_SPLIT = "test"  # the latest cutoff the dataset knows: what a served model would see


def history_before(data: TrainingData, cutoff: int, max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Per user row: the last ``max_len`` items bought strictly before ``cutoff``, most recent first,
    ``(U, max_len)`` int32 (0 past the length), and the lengths. Interactions are sorted by user, day."""
    before = data.day < cutoff
    start = np.searchsorted(data.user, np.arange(data.n_users), side="left")
    count = np.bincount(data.user[before], minlength=data.n_users)
    end = start + count
    length = np.minimum(count, max_len)
    offsets = np.arange(max_len)
    pad = offsets[None, :] >= length[:, None]
    idx = np.where(pad, 0, end[:, None] - 1 - offsets[None, :])
    hist = np.where(pad, 0, data.item[np.clip(idx, 0, max(data.item.size - 1, 0))]).astype(np.int32)
    return hist, length.astype(np.int64)


MAPPINGS_NOTE = (
    "categorical: value -> index (0 = unknown); articles: article_id -> item row (items.parquet, "
    "item_embeddings.npy, items.faiss); customers: customer_id -> user row (user_features.npz); the id "
    "tables are in ids_file (dc003.exported.load_mappings reads them)"
)


def _write_mappings(dataset_dir: Path, path: Path) -> None:
    """The categorical vocabularies and the article / customer id tables of the dataset (format 2)."""
    import pyarrow.parquet as pq

    from dc003.exported import IdTable
    from dc003.exported import write_mappings as write

    vocab = json.loads((dataset_dir / "vocab.json").read_text(encoding="utf-8"))
    categorical = {
        name: {str(v): i for i, v in enumerate(entry.get("values", [])) if v is not None}
        for name, entry in vocab.items()
    }
    tables = {}
    for table, file, cols in (
        ("articles", "items.parquet", ["article_id", "item_idx"]),
        ("customers", f"users_{SERVING_SPLIT}.parquet", ["customer_id", "user_idx"]),
    ):
        t = pq.read_table(dataset_dir / file, columns=cols)
        ids = t.column(0).cast("large_string").to_numpy(zero_copy_only=False)
        tables[table] = IdTable.build(ids, t.column(1).to_numpy())
    write(path, categorical, tables, MAPPINGS_NOTE)


def _write_users(path: Path, users: UserTable) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(
            fh,
            categorical=users.categorical,
            numerical=users.numerical,
            history=users.history,
            history_length=users.history_length,
        )


def _write_npy(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, array)


def _write_items(dataset_dir: Path, path: Path) -> None:
    import pyarrow.parquet as pq

    table = pq.read_table(
        dataset_dir / "items.parquet", columns=["item_idx", "article_id", "prod_name", "product_group_name"]
    )
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def _io_spec(path: Path) -> dict[str, Any]:
    from dc003.deploy.serving import session

    sess = session(path)
    return {
        "inputs": [{"name": i.name, "type": i.type, "shape": i.shape} for i in sess.get_inputs()],
        "outputs": [{"name": o.name, "type": o.type, "shape": o.shape} for o in sess.get_outputs()],
    }


def onnx_embeddings(
    files: tuple[Path, Path], users: Any, items: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Fresh sessions (1 thread) over ``users`` (a serving UserTable) and the catalogue arrays."""
    from dc003.deploy.serving import embed_items, embed_users, session

    u = embed_users(
        session(files[0]), users.categorical, users.numerical, users.history, users.history_length
    )
    return u, embed_items(session(files[1]), *items)


def run_export(
    params: ExportParams,
    serving_params: ServingParams,
    checkpoint_path: Path,
    dataset_dir: Path,
    text_dir: Path,
    out_dir: Path,
    report_path: Path,
    dc003_path: Path,
) -> dict[str, Any]:
    import torch

    from dc003.contracts import load_dc003
    from dc003.deploy import parity, retrieval
    from dc003.deploy.export import export_towers
    from dc003.deploy.serving import UserTable
    from dc003.model import checkpoint
    from dc003.scoring.serving_score import configured_prior, describe, tail_weight
    from dc003.text.embed import load_item_text
    from dc003.train.data import load_training_data
    from dc003.train.validation import retrieval_set, served_catalogue, stored_token_user_embeddings

    started = time.perf_counter()
    torch.set_num_threads(1)
    stability = load_dc003(dc003_path).model_validation.find("numerical_stability")
    assert stability.min_cosine is not None and stability.max_recall_50_diff is not None
    model, _ = checkpoint.load_model(checkpoint_path)
    model.eval()
    data = load_training_data(dataset_dir, load_item_text(text_dir), model.config)
    max_len = model.config.user_tower.sequence.max_len
    out_dir.mkdir(parents=True, exist_ok=True)
    cpu = torch.device("cpu")
    # the catalogue as served (never-sold items' inputs as params serving impute them, as the evaluation
    # ranks it): the user tower's history tokens are made from it, stored in the model (and so in its ONNX
    # graph) before export
    ref_items, item_num = served_catalogue(model, data, SERVING_SPLIT, serving_params)
    feats = data.features[SERVING_SPLIT]

    conversion: dict[str, Any] = {"ok": False, "error": None}
    try:
        files = export_towers(model, out_dir, params.opset, params.fp16, params.int8)
        conversion["ok"] = True
    except Exception as exc:  # recorded for the onnx_conversion gate, then re-raised: nothing to serve
        conversion["error"] = f"{type(exc).__name__}: {exc}"
        write_json(report_path, {"onnx_conversion": conversion})
        raise

    # serving inputs as of the test cutoff
    hist, length = history_before(data, data.cutoffs[SERVING_SPLIT], max_len)
    users = UserTable(feats.user_cat.astype(np.int64), feats.user_num.astype(np.float32), hist, length)
    _write_users(out_dir / layout.USER_FEATURES, users)
    _write_mappings(dataset_dir, out_dir / layout.MAPPINGS)
    _write_items(dataset_dir, out_dir / layout.ITEMS)

    # PyTorch reference on the test users and the whole catalogue
    rset = retrieval_set(data, SERVING_SPLIT)
    ref_users = stored_token_user_embeddings(model, data, SERVING_SPLIT, rset.query_rows, max_len, cpu)
    catalogue = (feats.item_cat, item_num, data.item_text)
    test_users = users.rows(rset.users)

    results: dict[str, Any] = {}
    outputs: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for precision in params.precisions():
        pair = (files[f"{precision}/user"], files[f"{precision}/item"])
        outputs[precision] = onnx_embeddings(pair, test_users, catalogue)
        results[precision] = parity.compare(
            (ref_users, ref_items),
            outputs[precision],
            rset.truth,
            min_cosine=stability.min_cosine,
            max_recall_diff=stability.max_recall_50_diff,
        ).model_dump()
    pu, pi = params.serving_user, params.serving_item
    serving = pu if pu == pi else f"user {pu}, item {pi}"
    serve_files = (files[f"{pu}/user"], files[f"{pi}/item"])
    served = (outputs[pu][0], outputs[pi][1])
    serve_parity = (
        results[pu]
        if pu == pi
        else parity.compare(
            (ref_users, ref_items),
            served,
            rset.truth,
            min_cosine=stability.min_cosine,
            max_recall_diff=stability.max_recall_50_diff,
        ).model_dump()
    )
    again = onnx_embeddings(serve_files, test_users, catalogue)  # fresh sessions, same inputs
    identical = all(np.array_equal(a, b) for a, b in zip(served, again, strict=True))

    user_emb, item_emb = served
    _write_npy(out_dir / layout.ITEM_EMBEDDINGS, item_emb)
    # the popularity prior (params serving) as of the serving cutoff: extra coordinates of the index
    prior, weight = configured_prior(item_num, model.config, serving_params, data.never_sold(SERVING_SPLIT))
    flat = retrieval.flat_index(item_emb, prior)
    retrieval.write_index(flat, out_dir / layout.INDEX)
    k = min(parity.K, item_emb.shape[0])
    _, exact = retrieval.search(flat, user_emb, k, weight)
    hnsw = retrieval.hnsw_index(item_emb, params.hnsw_m, params.hnsw_ef_search, prior=prior)
    _, approx = retrieval.search(hnsw, user_emb, k, weight)

    config = {
        "model": model.config.model_dump(mode="json"),
        "checkpoint": {"path": str(checkpoint_path), "sha256": sha256_file(checkpoint_path)},
        "export": {
            "exporter": "torch.onnx TorchScript (dynamo=False)",
            "opset": params.opset,
            "fp16": params.fp16,
            "int8": params.int8,
            "torch": torch.__version__,
        },
        "serving": {
            "precision": serving,
            "user_precision": pu,
            "item_precision": pi,
            "user_tower": serve_files[0].name,
            "item_tower": serve_files[1].name,
            # search queries are [user embedding, prior_weight, 0] (null: plain cosine, no extra coordinates)
            "popularity_prior": serving_params.popularity_prior,
            "prior_floor": serving_params.prior_floor,
            "prior_weight": weight,
            "new_item_quantile": serving_params.new_item_quantile,
            # + repurchase_boost x temperature x log(1 + times bought) over the user's history
            "repurchase_boost": serving_params.repurchase_boost,
            # after the first head_k items, the list is searched with tail_weight in the prior coordinate
            "tail_prior": serving_params.tail_prior,
            "tail_weight": tail_weight(serving_params, model.config.temperature),
            "head_k": serving_params.head_k,
            "temperature": model.config.temperature,
            "index_dim": int(flat.d),
        },
        "towers": {key: {"file": p.name, **_io_spec(p)} for key, p in files.items()},
        "similarity": describe(serving_params, model.config.temperature),
        "serving_split": SERVING_SPLIT,
    }
    write_json(out_dir / layout.MODEL_CONFIG, config)

    report = {
        "onnx_conversion": conversion,
        "parity": {**serve_parity, "precision": serving, "by_precision": results},
        "stability": {"identical_across_runs": identical, "precision": serving},
        "serving": config["serving"],
        "retrieval": {
            "index": "faiss IndexFlatIP on L2-normalised item embeddings (exact)"
            + ("" if weight is None else " + the popularity prior coordinate"),
            "items": int(item_emb.shape[0]),
            "ann": {
                "kind": "hnsw",
                "m": params.hnsw_m,
                "ef_search": params.hnsw_ef_search,
                "recall_50_vs_exact": retrieval.ann_recall(exact, approx),
                "queries": int(user_emb.shape[0]),
            },
        },
        "counts": {
            "test_users": int(rset.users.size),
            "items": int(item_emb.shape[0]),
            "users": data.n_users,
        },
        "files_mb": {
            p.name: round(p.stat().st_size / 2**20, 3) for p in sorted(out_dir.iterdir()) if p.is_file()
        },
        "seconds": round(time.perf_counter() - started, 2),
    }
    write_json(report_path, report)
    return report
