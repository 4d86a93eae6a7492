"""params.yaml sections `text_embed`, `model` and `phase_1` ... `phase_4`: the training run's knobs.

Fields mirroring a contract value carry ``contract_ref`` so `dc003 params check` lists every deviation;
the others are choices the contract leaves open (each explained where it is used).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from dc003.params.common import Section, contract_ref, extension
from dc003.params.evaluate import AlsParams

Scheduler = Literal["constant", "cosine_annealing", "cosine_annealing_warm_restarts", "linear_decay"]


class ModelParams(Section):
    embedding_dim: int = contract_ref("dc003:architecture.embedding_dim", gt=0)
    max_history: int = contract_ref("dc003:user_tower.sequence_encoder.max_sequence_length", gt=0)
    feedforward_dim: int = contract_ref("dc003:user_tower.sequence_encoder.feedforward_dim", gt=0)
    # item categoricals whose embeddings are added to each history token (d_model wide)
    history_item_features: list[str]
    # history tokens are made from the item tower's embedding of each purchased item (the contract leaves
    # "history token" open: contracts/dc003.yaml clarifications); this adds a learned item-id embedding
    history_item_id: bool = extension(
        "each history token also adds a learned embedding of the item id (collaborative, no content)"
    )
    # the user embedding adds a learned multiple of the normalised sum of the history items' item-tower
    # embeddings before its final normalisation (a skip path from the purchases to the output)
    history_residual: bool = extension(
        "user embedding = normalise(projection head output + scale x normalised sum of the history items' "
        "embeddings)"
    )
    history_residual_inputs: bool = extension(
        "the history skip path sums a learned linear map of each purchase's item embedding and item-tower "
        "input representation (starts as the embedding alone)",
        default=False,
    )
    history_residual_centred: bool = extension(
        "the history skip path sums the purchases' embeddings minus the running mean purchased embedding "
        "(what everyone buys), so the user vector carries how this customer differs from the average",
        default=False,
    )
    # linear skips: each tower's output adds a learned linear map of the input its first dense layer reads,
    # so a feature's direct (linear) effect need not squeeze through the dense stack and projection head
    user_linear_skip: bool = extension(
        "user embedding = normalise(projection head output + a learned linear map of the user tower's input "
        "representation), zero at init",
        default=False,
    )
    item_linear_skip: bool = extension(
        "item embedding = normalise(projection head output + a learned linear map of the item tower's input "
        "representation), zero at init",
        default=False,
    )
    # item categorical that defines "category" for phase 3 (alignment loss, hard-negative diversity)
    # and for the per-epoch category distribution
    category_feature: str


class PhaseParams(Section):
    epochs: int = Field(gt=0)
    batch_size: int = Field(gt=0)
    learning_rate: float = Field(gt=0)
    weight_decay: float = Field(ge=0)
    gradient_clipping: float = Field(gt=0)
    mixed_precision: bool
    scheduler: Scheduler
    # training examples drawn (without replacement) per epoch; 0 = every train-split interaction
    examples_per_epoch: int = Field(ge=0)
    # val-week buyers whose retrieval metrics are measured after each epoch: 0 = all, else a seeded
    # sample of this many (the same users every epoch); the val loss still covers every val interaction
    val_max_users: int = Field(ge=0)


class Phase1Params(PhaseParams):
    epochs: int = contract_ref("dc003:phases.phase_1.epochs", gt=0)
    batch_size: int = contract_ref("dc003:phases.phase_1.batch_size", gt=0)
    learning_rate: float = contract_ref("dc003:phases.phase_1.optimization.learning_rate", gt=0)
    weight_decay: float = contract_ref("dc003:phases.phase_1.optimization.weight_decay", ge=0)
    gradient_clipping: float = contract_ref("dc003:phases.phase_1.regularization.gradient_clipping", gt=0)
    mixed_precision: bool = contract_ref("dc003:phases.phase_1.mixed_precision")
    scheduler: Scheduler = contract_ref("dc003:phases.phase_1.optimization.scheduler")
    margin: float = contract_ref("dc003:phases.phase_1.bpr_loss.margin", ge=0)
    negatives: int = Field(gt=0)  # uniform random negatives per positive (BPR pairs)


class Phase2Params(PhaseParams):
    epochs: int = contract_ref("dc003:phases.phase_2.epochs", gt=0)
    batch_size: int = contract_ref("dc003:phases.phase_2.training_optimization.batch_size", gt=0)
    gradient_accumulation: int = contract_ref(
        "dc003:phases.phase_2.training_optimization.gradient_accumulation", gt=0
    )
    learning_rate: float = contract_ref("dc003:phases.phase_2.optimization.learning_rate", gt=0)
    min_learning_rate: float = contract_ref("dc003:phases.phase_2.optimization.min_learning_rate", gt=0)
    weight_decay: float = contract_ref("dc003:phases.phase_2.optimization.weight_decay", ge=0)
    gradient_clipping: float = contract_ref(
        "dc003:phases.phase_2.training_optimization.gradient_clipping", gt=0
    )
    mixed_precision: bool = contract_ref("dc003:phases.phase_2.training_optimization.mixed_precision")
    scheduler: Scheduler = contract_ref("dc003:phases.phase_2.optimization.scheduler")
    # warm restarts: the first cycle lasts restart_epochs epochs, each next one restart_mult times longer
    restart_epochs: int = Field(gt=0)
    restart_mult: int = Field(gt=0)
    warmup_steps: int = Field(ge=0)  # linear warm-up of the LR over the first optimiser steps
    temperature: float = contract_ref("dc003:phases.phase_2.infonce.temperature", gt=0)
    label_smoothing: float = contract_ref("dc003:phases.phase_2.infonce.label_smoothing", ge=0, lt=1)
    random_negatives: int = contract_ref(
        "dc003:phases.phase_2.sampling_strategy.additional_random_negatives", ge=0
    )
    popularity_weight: float = contract_ref("dc003:phases.phase_2.sampling_strategy.popularity_weight", ge=0)
    # + distillation_weight x relational distillation of the item tower from collaborative item factors
    # (implicit ALS, the ``distillation_teacher`` settings, on every purchase before the val cutoff); 0 = off
    distillation_weight: float = extension(
        "phase 2 loss + weight x relational distillation of the item tower from ALS item factors (0 = off)",
        ge=0,
    )
    distillation_temperature: float = Field(gt=0)
    distillation_teacher: AlsParams
    history_weight: float = extension(
        "phase 2 loss + weight x the same InfoNCE on the history encoder's output alone (0 = off)", ge=0
    )
    history_dropout: float = extension(
        "phase 2: this share of the train baskets is shown as a cold customer's: no purchase history and the "
        "profile columns a customer without purchases has (0 = off)",
        ge=0,
        lt=1,
    )


class Phase3Params(PhaseParams):
    epochs: int = contract_ref("dc003:phases.phase_3.epochs", gt=0)
    batch_size: int = contract_ref("dc003:phases.phase_3.batch_size", gt=0)
    learning_rate: float = contract_ref("dc003:phases.phase_3.optimization.learning_rate", gt=0)
    weight_decay: float = contract_ref("dc003:phases.phase_3.optimization.weight_decay", ge=0)
    gradient_clipping: float = contract_ref("dc003:phases.phase_3.regularization.gradient_clipping", gt=0)
    mixed_precision: bool = contract_ref("dc003:phases.phase_3.mixed_precision")
    scheduler: Scheduler = contract_ref("dc003:phases.phase_3.optimization.scheduler")
    temperature: float = contract_ref("dc003:phases.phase_3.composite_loss.primary_loss.temperature", gt=0)
    infonce_weight: float = contract_ref("dc003:phases.phase_3.composite_loss.primary_loss.weight", ge=0)
    category_weight: float = contract_ref("dc003:phases.phase_3.composite_loss.auxiliary_loss.weight", ge=0)
    category_temperature: float = contract_ref(
        "dc003:phases.phase_3.composite_loss.auxiliary_loss.temperature", gt=0
    )
    label_smoothing: float = contract_ref("dc003:phases.phase_3.regularization.label_smoothing", ge=0, lt=1)
    # the contract names no popularity correction for phase 3; the in-batch negatives are sampled as in
    # phase 2, so the same logQ correction keeps the two phases' objectives consistent
    popularity_weight: float = Field(ge=0)
    similarity_threshold: float = contract_ref(
        "dc003:phases.phase_3.hard_negative_strategy.similarity_threshold", ge=-1, le=1
    )
    max_hard_negatives: int = contract_ref(
        "dc003:phases.phase_3.hard_negative_strategy.max_hard_negatives", gt=0
    )
    # nearest neighbours of each positive item considered when mining (before the filters)
    hard_negative_candidates: int = Field(gt=0)


class Phase4Params(PhaseParams):
    epochs: int = contract_ref("dc003:phases.phase_4.epochs", gt=0)
    batch_size: int = contract_ref("dc003:phases.phase_4.batch_size", gt=0)
    learning_rate: float = contract_ref("dc003:phases.phase_4.optimization.learning_rate", gt=0)
    weight_decay: float = contract_ref("dc003:phases.phase_4.optimization.weight_decay", ge=0)
    gradient_clipping: float = contract_ref("dc003:phases.phase_4.gradient_clipping", gt=0)
    mixed_precision: bool = contract_ref("dc003:phases.phase_4.mixed_precision")
    scheduler: Scheduler = contract_ref("dc003:phases.phase_4.optimization.scheduler")
    temperature: float = contract_ref("dc003:phases.phase_4.stabilization_loss.temperature", gt=0)
    ema_decay: float = contract_ref("dc003:phases.phase_4.ema_regularization.decay_rate", gt=0, lt=1)


class TrainParams(Section):
    """How the training phases run (not what they learn): the number of processes (torch.distributed).

    ``nproc`` > 1: each phase stage re-runs itself under torchrun on that many processes (``gloo`` on CPU,
    ``nccl`` on CUDA, one GPU each) that split every batch; the global batch stays each phase's
    ``batch_size``, which ``nproc`` must divide. 1: one process, as before.
    """

    nproc: int = Field(gt=0)
