"""params.yaml sections `serving`, `export` and `bench`."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from dc003.params.common import Section, extension

Precision = Literal["fp32", "fp16", "int8"]


class ServingParams(Section):
    """How the two-tower ranks at serving time, and so in the evaluation (one scoring rule for both)."""

    # score = cosine(user, item) + popularity_prior x temperature x log(popularity_score + prior_floor).
    # Phases 2-3 subtract popularity_weight x log q from the logits (the logQ correction), so the towers'
    # cosine / temperature estimates log P(item | user) minus (1 - popularity_weight) x log popularity:
    # a prior of 1 - popularity_weight puts that back. 0 = the plain cosine.
    popularity_prior: float = extension(
        "serving score = cosine + prior x temperature x log(item popularity + floor): the share of the "
        "log-popularity the training's logQ correction took out of the towers' scores, put back (0 = off)",
        ge=0,
    )
    # added to popularity_score (0..1) before the log, so an item not sold in the window stays finite
    prior_floor: float = Field(gt=0, le=1)
    # an item never sold before the cutoff has no popularity to measure: it takes this quantile of the sold
    # items' popularity_score instead of 0, in the prior and as the item tower's popularity input (null =
    # off: popularity 0, log(prior_floor) in the prior)
    new_item_quantile: float | None = extension(
        "never-sold items take this quantile of the sold items' popularity, in the prior and in the item "
        "tower's input (null = off)",
        ge=0,
        le=1,
    )
    # + repurchase_boost x temperature x log(1 + times bought) for the items in the user's history (the
    # user tower's last <= 50 purchases); in logits (cosine / temperature), repurchase_boost x log(1 + n)
    repurchase_boost: float = extension(
        "serving score + boost x temperature x log(1 + times the user bought the item), over the user's "
        "history (0 = off)",
        ge=0,
    )
    # the served list in two parts: its first head_k items by the score above, the rest by the same score
    # with tail_prior in place of popularity_prior (the items of the head skipped): the head keeps its
    # precision, the tail reaches past the best sellers (null = off: one ranking; no effect when
    # popularity_prior is 0, the plain cosine)
    tail_prior: float | None = extension(
        "the served list's items after the first head_k are ranked with this popularity prior instead "
        "(null = off: one ranking)",
        default=None,
        ge=0,
    )
    head_k: int = Field(default=10, gt=0)


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
