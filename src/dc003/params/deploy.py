"""params.yaml sections `export` and `bench`."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from dc003.params.common import Section

Precision = Literal["fp32", "fp16", "int8"]


class ExportParams(Section):
    opset: int = Field(ge=17)
    # the contract asks for FP16 towers: true writes them under the contract's names (FP32 inputs and
    # outputs) and keeps the FP32 graphs beside them as <tower>.fp32.onnx
    fp16: bool
    # also write dynamically int8-quantised graphs (MatMul/Gemm weights int8, activations quantised per call)
    int8: bool
    # the graphs `dc003 recommend`, the catalogue embeddings, the bench latencies and the parity gates use,
    # per tower (a precision must be exported to serve)
    serving_user: Precision
    serving_item: Precision
    hnsw_m: int = Field(gt=1)  # the ANN option: HNSW graph degree ...
    hnsw_ef_search: int = Field(gt=0)  # ... and search breadth; its recall@50 vs exact is recorded

    @model_validator(mode="after")
    def _fp16_exists(self) -> ExportParams:
        for name in ("serving_user", "serving_item"):
            value = getattr(self, name)
            if value not in self.precisions():
                raise ValueError(f"{name} {value} needs {value}: true")
        return self

    def precisions(self) -> list[str]:
        """Every precision exported (each is parity-checked and benched)."""
        return ["fp32"] + ["fp16"] * self.fp16 + ["int8"] * self.int8


class BenchParams(Section):
    warmup: int = Field(ge=0)  # untimed calls before each single-row measurement
    repetitions: int = Field(gt=0)  # timed single-row calls (users, items, retrieval)
    batch_repetitions: int = Field(gt=0)  # timed 1,000-row batches (warm-up: one tenth of warmup, >= 2)
    encode_repetitions: int = Field(gt=0)  # timed single items including the MiniLM text encoding
    threads: int = Field(gt=0)  # ONNX Runtime intra-op, FAISS and PyTorch threads
    retrieval_items: int = Field(gt=0)  # the synthetic catalogue the top-50 retrieval is also timed on
