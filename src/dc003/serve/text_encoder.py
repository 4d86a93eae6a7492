"""The packaged all-MiniLM-L6-v2 as an ONNX graph, so a serving process embeds new article texts with ONNX
Runtime and the ``tokenizers`` library alone (no torch, no sentence-transformers).

:func:`export_encoder` (torch: run it in its own process, :func:`ensure_encoder` does) writes the BERT
encoder's graph; :class:`OnnxTextEncoder` tokenises as sentence-transformers does (the model's
``tokenizer.json``, truncated to its ``max_seq_length``), runs the graph, mean-pools over the real tokens
and L2-normalises: the model's own modules (Transformer, Pooling mean, Normalize), so its vectors are the
``text_embed`` stage's (tests/test_serve.py: POST /embed/items against sentence-transformers + item tower).

The graph is cached beside the text vectors, in a directory named by the encoder identity
(:func:`dc003.text.embed.encoder_identity`: a hash of the weights), so a changed model is never served
with an old graph.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from dc003.errors import Dc003Error
from dc003.io import atomic_path

if TYPE_CHECKING:
    import onnxruntime as ort

GRAPH_FILE = "minilm.onnx"
INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def encoder_graph_path(cache_root: Path) -> tuple[Path, Path]:
    """``(graph path, model dir)`` of the packaged encoder under ``cache_root`` (paths.text_cache_dir)."""
    from dc003.text.embed import encoder_identity

    model_id, model_dir = encoder_identity()
    return cache_root / model_id / GRAPH_FILE, model_dir


def export_encoder(model_dir: Path, out: Path, opset: int = 18) -> None:
    """Write the BERT encoder of ``model_dir`` as ONNX (dynamic batch and sequence axes). Imports torch."""
    import warnings

    import torch
    from transformers import AutoModel

    model = AutoModel.from_pretrained(str(model_dir)).eval()
    example = {
        "input_ids": torch.ones(2, 5, dtype=torch.long),
        "attention_mask": torch.ones(2, 5, dtype=torch.long),
        "token_type_ids": torch.zeros(2, 5, dtype=torch.long),
    }

    class Encoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = model

        def forward(self, ids: torch.Tensor, mask: torch.Tensor, types: torch.Tensor) -> torch.Tensor:
            return self.bert(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state

    out.parent.mkdir(parents=True, exist_ok=True)
    axes = {name: {0: "batch", 1: "tokens"} for name in (*INPUTS, "token_embeddings")}
    with atomic_path(out) as tmp, warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Encoder(),
            tuple(example[n] for n in INPUTS),
            str(tmp),
            dynamo=False,
            opset_version=opset,
            input_names=list(INPUTS),
            output_names=["token_embeddings"],
            dynamic_axes=axes,
            do_constant_folding=True,
        )


def ensure_encoder(cache_root: Path) -> tuple[Path, Path]:
    """The cached graph (exported first, in a child process that imports torch, when missing)."""
    graph, model_dir = encoder_graph_path(cache_root)
    if not graph.is_file():
        done = subprocess.run(
            [sys.executable, "-m", "dc003.serve.text_encoder", str(model_dir), str(graph)],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0 or not graph.is_file():
            detail = (done.stderr or done.stdout).strip().splitlines()
            raise Dc003Error(
                f"{graph}: exporting the MiniLM text encoder to ONNX failed: "
                f"{detail[-1] if detail else done.returncode}"
            )
    return graph, model_dir


class OnnxTextEncoder:
    """texts -> ``(N, 384)`` float32: sentence-transformers' all-MiniLM-L6-v2 vectors, from ONNX Runtime."""

    def __init__(self, graph: Path, model_dir: Path, threads: int = 1, batch_size: int = 32) -> None:
        from tokenizers import Tokenizer

        from dc003.deploy.serving import session
        from dc003.exported import read_artifact

        config = json.loads((model_dir / "sentence_bert_config.json").read_text("utf-8"))
        modules = [m["type"] for m in json.loads((model_dir / "modules.json").read_text("utf-8"))]
        pooling = json.loads((model_dir / "1_Pooling" / "config.json").read_text("utf-8"))
        if not pooling.get("pooling_mode_mean_tokens"):
            raise Dc003Error(f"{model_dir}: pooling is not the mean of the tokens: not supported here")
        self.normalise = any(t.endswith(".Normalize") for t in modules)
        self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_length=int(config["max_seq_length"]))
        self.tokenizer.enable_padding()
        self.session: ort.InferenceSession = read_artifact(graph, lambda p: session(p, threads))
        self.batch_size = batch_size

    def __call__(self, texts: list[str]) -> np.ndarray:
        parts = [self._batch(texts[s : s + self.batch_size]) for s in range(0, len(texts), self.batch_size)]
        return np.concatenate(parts) if parts else np.empty((0, 384), dtype=np.float32)

    def _batch(self, texts: list[str]) -> np.ndarray:
        encoded = self.tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encoded], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encoded], dtype=np.int64)
        types = np.array([e.type_ids for e in encoded], dtype=np.int64)
        tokens = self.session.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": types})[
            0
        ]
        weights = mask[:, :, None].astype(np.float32)
        pooled = (tokens * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        if self.normalise:
            pooled /= np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return pooled.astype(np.float32)


if __name__ == "__main__":  # python -m dc003.serve.text_encoder MODEL_DIR OUT
    import dc003  # noqa: F401  (offline, no telemetry)

    export_encoder(Path(sys.argv[1]), Path(sys.argv[2]))
