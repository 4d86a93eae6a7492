"""The deployment artifacts directory (``${paths.artifacts_dir}``), written by the ``export`` stage.

``user_tower.onnx`` / ``item_tower.onnx``
    The contract's FP16 towers (FP32 inputs and outputs); with ``export.fp16`` off they are the FP32 graphs.
``user_tower.fp32.onnx`` / ``item_tower.fp32.onnx``
    The FP32 graphs (written when ``export.fp16`` is on). ``user_tower.int8.onnx`` / ``item_tower.int8.onnx``
    Dynamic int8 quantisation of the FP32 graphs' MatMul/Gemm weights (written when ``export.int8`` is on).
``model_config.json`` names the pair that serves.
``model_config.json``
    The model's resolved config (as stored in the checkpoint), each tower's input/output names and shapes,
    the opset, the serving precision and the similarity definition.
``embedding_mappings.json``
    A small header (format 2): every categorical value -> index per feature (index 0 = unknown), and per id
    table (``articles``: ``article_id`` -> item row, ``customers``: ``customer_id`` -> user row) its count,
    key encoding and CRC-32s. Read with :func:`dc003.exported.load_mappings` (which also reads format 1,
    every id a JSON key, as exports before it wrote).
``embedding_mappings.npz``
    The id tables: ``<table>_keys`` (the ids sorted, fixed-width bytes; a 64-hex customer id as its 32
    bytes) and ``<table>_rows``; memory-mapped by the loader, a lookup is a binary search.
``user_features.npz``
    Per user row, as of the test cutoff (the latest the dataset knows): ``categorical`` int64, ``numerical``
    float32 (raw, NaN = missing), ``history`` int32 ``(U, max_len)`` most recent first and ``history_length``.
    Uncompressed, so the service memory-maps it (:func:`dc003.exported.open_npz`).
``items.parquet``
    Per item row: ``article_id``, ``prod_name``, ``product_group_name`` (what ``dc003 recommend`` prints).
``item_embeddings.npy`` / ``items.faiss``
    The serving item tower's embeddings of the whole catalogue (features as of the test cutoff) and an
    exact inner-product FAISS index over them (L2-normalised: the inner product is the training cosine).
"""

from __future__ import annotations

USER_TOWER = "user_tower.onnx"
ITEM_TOWER = "item_tower.onnx"
USER_TOWER_FP32 = "user_tower.fp32.onnx"
ITEM_TOWER_FP32 = "item_tower.fp32.onnx"
USER_TOWER_INT8 = "user_tower.int8.onnx"
ITEM_TOWER_INT8 = "item_tower.int8.onnx"
MODEL_CONFIG = "model_config.json"
MAPPINGS = "embedding_mappings.json"
MAPPING_IDS = "embedding_mappings.npz"  # written beside MAPPINGS (its stem)
USER_FEATURES = "user_features.npz"
ITEMS = "items.parquet"
ITEM_EMBEDDINGS = "item_embeddings.npy"
INDEX = "items.faiss"

USER_INPUTS = ("categorical", "numerical", "history", "history_padding")
USER_OUTPUT = "user_embedding"
ITEM_INPUTS = ("categorical", "numerical", "text")
ITEM_OUTPUT = "item_embedding"


def tower_files(precision: str, fp16: bool) -> tuple[str, str]:
    """``(user, item)`` file names of the graphs of one precision (``fp16``: whether FP16 was exported)."""
    if precision == "int8":
        return USER_TOWER_INT8, ITEM_TOWER_INT8
    if precision == "fp16" or not fp16:
        return USER_TOWER, ITEM_TOWER
    return USER_TOWER_FP32, ITEM_TOWER_FP32
