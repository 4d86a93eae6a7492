"""Typed form of ``contracts/dc003.yaml`` (the DC-003 two-tower model contract).

Field names follow the document so a key path in an error message can be found in the prose.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, PositiveFloat, PositiveInt, field_validator, model_validator

from dc003.contracts.base import ContractHeader, Declared, IntRange
from dc003.contracts.thresholds import Threshold

Activation = Literal["relu", "gelu", "tanh", "none"]
Normalization = Literal["min_max_scaling", "log_transform+min_max", "standard_scaling", "as_is"]
Scheduler = Literal["constant", "cosine_annealing", "cosine_annealing_warm_restarts", "linear_decay"]
Probability = float


# ---------------------------------------------------------------- metadata


class Dependency(Declared):
    id: str
    name: str
    contract: str


class ContractMeta(ContractHeader):
    implementation_owner: str
    stakeholders: list[str]
    dependencies: list[Dependency]


class Architecture(Declared):
    model_type: str
    paradigm: str
    embedding_space: str
    embedding_dim: PositiveInt
    training_objective: str
    serving_pattern: str
    similarity: Literal["cosine"]


# ---------------------------------------------------------------- towers


class CategoricalEmbedding(Declared):
    vocab_size: PositiveInt
    embedding_dim: PositiveInt
    pretrained: bool = False


class NumericalFeature(Declared):
    name: str
    normalization: Normalization
    learned_embedding: bool
    embedding_dim: PositiveInt | None = None

    @model_validator(mode="after")
    def _embedding_dim_iff_learned(self) -> NumericalFeature:
        if self.learned_embedding and self.embedding_dim is None:
            raise ValueError("embedding_dim is required when learned_embedding is true")
        if not self.learned_embedding and self.embedding_dim is not None:
            raise ValueError("embedding_dim must be absent when learned_embedding is false")
        return self

    @property
    def width(self) -> int:
        """Width this feature contributes to the tower input."""
        return self.embedding_dim if self.embedding_dim is not None else 1


class TextFeature(Declared):
    name: str
    embedding_type: Literal["pretrained"]
    model: str
    embedding_dim: PositiveInt
    freeze_pretrained: bool
    projection_dim: PositiveInt


class PositionalEncoding(Declared):
    type: Literal["learned", "sinusoidal"]
    max_len: PositiveInt


class SequenceEncoder(Declared):
    type: Literal["transformer_encoder"]
    max_sequence_length: PositiveInt
    d_model: PositiveInt
    num_heads: PositiveInt
    num_layers: PositiveInt
    dropout: Probability = Field(ge=0.0, lt=1.0)
    feedforward_dim: PositiveInt
    positional_encoding: PositionalEncoding

    @model_validator(mode="after")
    def _heads_divide_d_model(self) -> SequenceEncoder:
        if self.d_model % self.num_heads:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by num_heads ({self.num_heads})")
        return self


class DenseLayer(Declared):
    name: str
    units: PositiveInt
    activation: Activation
    dropout: Probability = Field(default=0.0, ge=0.0, lt=1.0)
    batch_norm: bool = False


class Tower(Declared):
    input_dim: PositiveInt
    output_dim: PositiveInt
    categorical_embeddings: dict[str, CategoricalEmbedding]
    numerical_features: list[NumericalFeature]
    dense_layers: list[DenseLayer] = Field(min_length=1)
    projection_head: list[DenseLayer] = Field(min_length=1)

    def feature_width(self) -> int:
        """Sum of the declared feature widths: what the first dense layer actually receives."""
        return sum(c.embedding_dim for c in self.categorical_embeddings.values()) + sum(
            n.width for n in self.numerical_features
        )


class UserTower(Tower):
    sequence_encoder: SequenceEncoder

    def feature_width(self) -> int:
        return super().feature_width() + self.sequence_encoder.d_model


class ItemTower(Tower):
    text_features: list[TextFeature]

    def feature_width(self) -> int:
        return super().feature_width() + sum(t.projection_dim for t in self.text_features)


# ---------------------------------------------------------------- phases


class Optimization(Declared):
    optimizer: Literal["AdamW"]
    learning_rate: PositiveFloat
    min_learning_rate: PositiveFloat | None = None
    scheduler: Scheduler
    weight_decay: float = Field(ge=0.0)


class Phase(Declared):
    name: str
    epochs: IntRange
    loss_function: str
    optimization: Optimization

    # Each phase states these in a different place in the document; these accessors give one view.
    def batch_size_value(self) -> int:
        raise NotImplementedError

    def mixed_precision_value(self) -> bool:
        raise NotImplementedError

    def gradient_clipping_value(self) -> float:
        raise NotImplementedError

    def gradient_accumulation_value(self) -> int:
        return 1


class BprLoss(Declared):
    type: str
    margin: float = Field(ge=0.0)
    sampling_strategy: Literal["random_negatives_only"]


class Phase1Regularization(Declared):
    l2_weight_decay: float = Field(ge=0.0)
    dropout_rate: Probability = Field(ge=0.0, lt=1.0)
    gradient_clipping: PositiveFloat


class Phase1(Phase):
    bpr_loss: BprLoss
    regularization: Phase1Regularization
    batch_size: PositiveInt
    mixed_precision: bool

    def batch_size_value(self) -> int:
        return self.batch_size

    def mixed_precision_value(self) -> bool:
        return self.mixed_precision

    def gradient_clipping_value(self) -> float:
        return self.regularization.gradient_clipping


class InfoNce(Declared):
    type: str
    temperature: PositiveFloat
    label_smoothing: Probability = Field(ge=0.0, lt=1.0)


class SamplingStrategy(Declared):
    in_batch_negatives: bool
    additional_random_negatives: int = Field(ge=0)
    popularity_correction: Literal["inverse_frequency_weighting", "none"]
    popularity_weight: float = Field(ge=0.0)


class TrainingOptimization(Declared):
    batch_size: PositiveInt
    gradient_accumulation: PositiveInt
    mixed_precision: bool
    gradient_clipping: PositiveFloat


class Phase2(Phase):
    infonce: InfoNce
    sampling_strategy: SamplingStrategy
    training_optimization: TrainingOptimization

    def batch_size_value(self) -> int:
        return self.training_optimization.batch_size

    def mixed_precision_value(self) -> bool:
        return self.training_optimization.mixed_precision

    def gradient_clipping_value(self) -> float:
        return self.training_optimization.gradient_clipping

    def gradient_accumulation_value(self) -> int:
        return self.training_optimization.gradient_accumulation


class LossTerm(Declared):
    type: str
    weight: float = Field(ge=0.0)
    temperature: PositiveFloat


class CompositeLoss(Declared):
    primary_loss: LossTerm
    auxiliary_loss: LossTerm
    total_loss: str


class HardNegativeStrategy(Declared):
    similarity_threshold: float = Field(ge=-1.0, le=1.0)
    max_hard_negatives: PositiveInt
    diversity_constraint: str


class Phase3Regularization(Declared):
    dropout_rate: Probability = Field(ge=0.0, lt=1.0)
    label_smoothing: Probability = Field(ge=0.0, lt=1.0)
    gradient_clipping: PositiveFloat


class Phase3(Phase):
    composite_loss: CompositeLoss
    hard_negative_strategy: HardNegativeStrategy
    regularization: Phase3Regularization
    batch_size: PositiveInt
    mixed_precision: bool

    def batch_size_value(self) -> int:
        return self.batch_size

    def mixed_precision_value(self) -> bool:
        return self.mixed_precision

    def gradient_clipping_value(self) -> float:
        return self.regularization.gradient_clipping


class StabilizationLoss(Declared):
    type: str
    temperature: PositiveFloat
    no_negative_sampling: bool


class EmaRegularization(Declared):
    decay_rate: float = Field(gt=0.0, lt=1.0)
    apply_to: Literal["both_towers", "user_tower", "item_tower"]
    update_frequency: Literal["every_step"]


class Phase4(Phase):
    stabilization_loss: StabilizationLoss
    ema_regularization: EmaRegularization
    batch_size: PositiveInt
    mixed_precision: bool
    gradient_clipping: PositiveFloat

    def batch_size_value(self) -> int:
        return self.batch_size

    def mixed_precision_value(self) -> bool:
        return self.mixed_precision

    def gradient_clipping_value(self) -> float:
        return self.gradient_clipping


class Phases(Declared):
    phase_1: Phase1
    phase_2: Phase2
    phase_3: Phase3
    phase_4: Phase4

    def items(self) -> list[tuple[str, Phase]]:
        return [
            ("phase_1", self.phase_1),
            ("phase_2", self.phase_2),
            ("phase_3", self.phase_3),
            ("phase_4", self.phase_4),
        ]


# ---------------------------------------------------------------- implementation interface


class ModelClass(Declared):
    name: str
    components: list[str]
    attributes: list[str]
    methods: dict[str, str]


class TrainingPipelineSpec(Declared):
    name: str
    methods: dict[str, str]
    grad_scaler: str


class Implementation(Declared):
    model_class: ModelClass
    training_pipeline: TrainingPipelineSpec


# ---------------------------------------------------------------- requirements


class Latency(Declared):
    single_user_embedding: Threshold
    single_item_embedding: Threshold
    batch_inference_1k: Threshold


class Throughput(Declared):
    cpu_inference: Threshold
    gpu_inference: Threshold


class Memory(Declared):
    user_tower_memory: Threshold
    item_tower_memory: Threshold
    total_model_memory: Threshold


class Accuracy(Declared):
    recall_50: Threshold
    ndcg_10: Threshold
    coverage: Threshold
    cold_start_performance: Threshold


class InferenceRequirements(Declared):
    latency: Latency
    throughput: Throughput
    memory: Memory
    accuracy: Accuracy


class Serving(Declared):
    horizontal_scaling: str
    caching: str
    vector_search: str


class ScalabilityRequirements(Declared):
    user_scale: PositiveInt
    item_scale: PositiveInt
    embedding_storage: Threshold
    update_frequency: str
    serving: Serving


class GlobalOptimization(Declared):
    optimizer: Literal["AdamW"]
    betas: tuple[float, float]
    eps: PositiveFloat
    amsgrad: bool

    @field_validator("betas")
    @classmethod
    def _betas_in_range(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not all(0.0 <= b < 1.0 for b in value):
            raise ValueError(f"betas must lie in [0, 1) (got {list(value)})")
        return value


class GlobalConfig(Declared):
    embedding_dim: PositiveInt
    temperature: PositiveFloat
    dropout_rate: Probability = Field(ge=0.0, lt=1.0)
    weight_decay: float = Field(ge=0.0)
    gradient_clipping: PositiveFloat
    mixed_precision: bool
    use_ema: bool
    optimization: GlobalOptimization


class PhaseHyperparameters(Declared):
    learning_rate: PositiveFloat
    min_learning_rate: PositiveFloat | None = None
    batch_size: PositiveInt
    epochs: IntRange
    scheduler: Scheduler


class PhaseHyperparameterTable(Declared):
    phase_1: PhaseHyperparameters
    phase_2: PhaseHyperparameters
    phase_3: PhaseHyperparameters
    phase_4: PhaseHyperparameters


class Artifact(Declared):
    path: str = Field(min_length=1)
    content: str
    format: Literal["PyTorch", "ONNX", "JSON", "PNG"]
    optimization: Literal["FP16", "FP32", "INT8"] | None = None


class OutputArtifacts(Declared):
    checkpoints: list[Artifact]
    deployment: list[Artifact]
    evaluation: list[Artifact]

    def all(self) -> list[tuple[str, int, Artifact]]:
        return [
            (group, i, art)
            for group in ("checkpoints", "deployment", "evaluation")
            for i, art in enumerate(getattr(self, group))
        ]

    def path_of(self, name: str) -> str:
        """The declared path whose file name is ``name`` (e.g. ``user_tower.onnx``)."""
        for _, _, art in self.all():
            if art.path.rsplit("/", 1)[-1] == name:
                return art.path
        raise KeyError(name)


class PytorchSizes(Declared):
    user_tower: Threshold
    item_tower: Threshold
    complete_model: Threshold


class OnnxSizes(Declared):
    user_tower: Threshold
    item_tower: Threshold
    total_optimized: Threshold


class EmbeddingTable(Declared):
    rows: Literal["num_users", "num_items"]
    dim: PositiveInt
    bytes_per_value: PositiveInt


class EmbeddingStorage(Declared):
    user_embeddings: EmbeddingTable
    item_embeddings: EmbeddingTable
    vocab_embeddings: Threshold


class ModelSizeRequirements(Declared):
    pytorch_model: PytorchSizes
    onnx_optimized: OnnxSizes
    embedding_storage: EmbeddingStorage


class CountRange(Declared):
    min: PositiveInt
    max: PositiveInt

    @model_validator(mode="after")
    def _ordered(self) -> CountRange:
        if self.min > self.max:
            raise ValueError(f"min must be <= max (got min={self.min}, max={self.max})")
        return self


class ValidationCheck(Declared):
    check: str
    criterion: str
    unit: str | None = None
    range: dict[Literal["user_tower", "item_tower"], CountRange] | None = None
    min_grad_norm: PositiveFloat | None = None
    max_grad_norm: PositiveFloat | None = None
    min_cosine: float | None = Field(default=None, ge=-1.0, le=1.0)
    max_recall_50_diff: float | None = Field(default=None, ge=0.0, le=1.0)

    def threshold(self) -> Threshold | None:
        """The criterion as a threshold when it is one (``"> 1000 /s"``), else None."""
        try:
            return Threshold.parse(self.criterion)
        except ValueError:
            return None


class ModelValidation(Declared):
    architecture_validation: list[ValidationCheck]
    performance_validation: list[ValidationCheck]
    deployment_validation: list[ValidationCheck]

    def find(self, check: str) -> ValidationCheck:
        for group in (self.architecture_validation, self.performance_validation, self.deployment_validation):
            for item in group:
                if item.check == check:
                    return item
        raise KeyError(check)


class MonitoredMetric(Declared):
    metric: str
    frequency: str


class TrainingMonitoring(Declared):
    real_time_metrics: list[MonitoredMetric]
    epoch_metrics: list[MonitoredMetric]


class ImplementationChecklist(Declared):
    pre_training: list[str]
    during_training: list[str]
    post_training: list[str]
    documentation: list[str]


class Clarification(Declared):
    path: str
    value: Any
    reason: str


class DesignPrinciples(Declared):
    scalability: str
    efficiency: str
    maintainability: str
    extensibility: str
    production_ready: str


class Dc003Contract(Declared):
    contract: ContractMeta
    design_principles: DesignPrinciples
    architecture: Architecture
    user_tower: UserTower
    item_tower: ItemTower
    phases: Phases
    implementation: Implementation
    inference_requirements: InferenceRequirements
    scalability_requirements: ScalabilityRequirements
    global_config: GlobalConfig
    phase_hyperparameters: PhaseHyperparameterTable
    output_artifacts: OutputArtifacts
    model_size_requirements: ModelSizeRequirements
    model_validation: ModelValidation
    training_monitoring: TrainingMonitoring
    implementation_checklist: ImplementationChecklist
    clarifications: list[Clarification] = Field(default_factory=list)
