"""The resolved architecture: contract (DC-003 towers) + DC-002 column mapping + params + fitted statistics.

Everything a later stage needs to rebuild the model is in :class:`ModelConfig`, as plain data, and it is
stored inside every checkpoint (``ModelConfig.model_dump(mode="json")``) so export, evaluation and serving
never read the current params.yaml or contracts. The contract's ``input_dim`` is not used: the first dense
layer takes the width the declared features add up to (``dc003 contracts lint`` reports the difference).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import Field

from dc003.contracts.base import Declared

if TYPE_CHECKING:
    from dc003.contracts.dc002 import Dc002Contract
    from dc003.contracts.dc003 import Dc003Contract, DenseLayer, NumericalFeature
    from dc003.params.train import ModelParams

CONFIG_FORMAT = 2  # 2: history tokens from the item tower's embeddings
Normalization = Literal["min_max_scaling", "log_transform+min_max", "standard_scaling", "as_is"]
# a constant feature would divide by zero; it is mapped to 0 instead
_MIN_SCALE = 1e-6


class CategoricalSpec(Declared):
    name: str  # DC-003 feature name
    source: str  # DC-002 "<table>.<column>"; the encoded column is <column>_idx
    vocab_size: int = Field(gt=0)
    embedding_dim: int = Field(gt=0)


class NumericSpec(Declared):
    """One numerical input: ``x -> impute NaN -> [log1p] -> (x - shift) / scale -> [Linear(1, dim)]``."""

    name: str
    source: str
    normalization: Normalization
    embedding_dim: int | None  # None: the normalised value enters as is (width 1)
    log: bool
    shift: float
    scale: float = Field(gt=0)
    impute: float  # replaces NaN (missing age): the train-split mean of the raw value

    @property
    def width(self) -> int:
        return self.embedding_dim if self.embedding_dim is not None else 1


class TextSpec(Declared):
    name: str
    source: str
    embedding_dim: int = Field(gt=0)
    projection_dim: int = Field(gt=0)


class DenseSpec(Declared):
    units: int = Field(gt=0)
    activation: Literal["relu", "gelu", "tanh", "none"]
    dropout: float = Field(ge=0, lt=1)
    batch_norm: bool


class SequenceSpec(Declared):
    """History encoder: token = a linear map of the item tower's embedding of the item (+ an item-id
    embedding when ``item_id_embedding``) + attribute embeddings + learned recency position.

    The item-tower embedding is what carries taste: the purchases move the user's embedding in the very
    space the candidates live in, and a rare or new article gets its content's vector, not an untrained
    id row. A learned CLS token is prepended and never masked, so an empty history still has one key to
    attend to; its output is the pooled history vector.
    """

    max_len: int = Field(gt=0)
    d_model: int = Field(gt=0)
    num_heads: int = Field(gt=0)
    num_layers: int = Field(gt=0)
    feedforward_dim: int = Field(gt=0)
    dropout: float = Field(ge=0, lt=1)
    n_items: int = Field(gt=0)  # id rows; one more row (index n_items) is the out-of-catalogue id
    item_attributes: list[CategoricalSpec]  # item categoricals looked up for each history item
    item_dim: int = Field(gt=0)  # width of the token features: item embedding + item tower input width
    item_id_embedding: bool = False  # also a learned embedding per item id (collaborative, no content)
    # > 0: the first residual_dim token features are the item embedding, and the user embedding adds a
    # learned multiple of the normalised sum of the history items' embeddings before its final normalisation
    residual_dim: int = Field(default=0, ge=0)
    # the residual sums the history embeddings minus count x the running mean purchased embedding
    residual_centred: bool = False
    # the residual reads a learned linear map of the whole token features (embedding + inputs)
    residual_inputs: bool = False


class UserTowerConfig(Declared):
    categorical: list[CategoricalSpec]
    numerical: list[NumericSpec]
    sequence: SequenceSpec
    dense: list[DenseSpec]
    projection: list[DenseSpec]
    # the output adds a learned linear map (zero at init) of the input the first dense layer reads
    linear_skip: bool = False

    def input_width(self) -> int:
        return (
            sum(c.embedding_dim for c in self.categorical)
            + sum(n.width for n in self.numerical)
            + self.sequence.d_model
        )


class ItemTowerConfig(Declared):
    categorical: list[CategoricalSpec]
    numerical: list[NumericSpec]
    text: list[TextSpec]
    dense: list[DenseSpec]
    projection: list[DenseSpec]
    linear_skip: bool = False  # as in UserTowerConfig

    def input_width(self) -> int:
        return (
            sum(c.embedding_dim for c in self.categorical)
            + sum(n.width for n in self.numerical)
            + sum(t.projection_dim for t in self.text)
        )


class ModelConfig(Declared):
    format: int = CONFIG_FORMAT
    contract_version: str
    embedding_dim: int = Field(gt=0)
    temperature: float = Field(gt=0)  # the contract's global temperature; each phase uses its own
    ema_decay: float = Field(gt=0, lt=1)
    n_items: int = Field(gt=0)
    category_feature: str  # item categorical used for category alignment, diversity and the category mix
    user_tower: UserTowerConfig
    item_tower: ItemTowerConfig


class NumericStats(Declared):
    """Train-split statistics of one raw numerical column (NaN values ignored)."""

    min: float
    max: float
    mean: float
    std: float
    log_min: float
    log_max: float


def fit_numeric_stats(values: np.ndarray) -> NumericStats:
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return NumericStats(min=0.0, max=1.0, mean=0.0, std=1.0, log_min=0.0, log_max=1.0)
    logged = np.log1p(np.clip(x, 0.0, None))
    return NumericStats(
        min=float(x.min()),
        max=float(x.max()),
        mean=float(x.mean()),
        std=float(x.std()),
        log_min=float(logged.min()),
        log_max=float(logged.max()),
    )


def _numeric_spec(feature: NumericalFeature, source: str, stats: NumericStats) -> NumericSpec:
    norm = feature.normalization
    if norm == "min_max_scaling":
        log, shift, scale = False, stats.min, stats.max - stats.min
    elif norm == "log_transform+min_max":
        log, shift, scale = True, stats.log_min, stats.log_max - stats.log_min
    elif norm == "standard_scaling":
        log, shift, scale = False, stats.mean, stats.std
    else:  # as_is: already in [0, 1] (price_normalized)
        log, shift, scale = False, 0.0, 1.0
    return NumericSpec(
        name=feature.name,
        source=source,
        normalization=norm,
        embedding_dim=feature.embedding_dim if feature.learned_embedding else None,
        log=log,
        shift=shift,
        scale=max(scale, _MIN_SCALE) if math.isfinite(scale) else 1.0,
        impute=stats.mean,
    )


def _dense(layers: list[DenseLayer]) -> list[DenseSpec]:
    return [
        DenseSpec(units=d.units, activation=d.activation, dropout=d.dropout, batch_norm=d.batch_norm)
        for d in layers
    ]


def resolve_model_config(
    dc003: Dc003Contract,
    dc002: Dc002Contract,
    params: ModelParams,
    *,
    n_items: int,
    stats: dict[str, NumericStats],
) -> ModelConfig:
    """Build the architecture from the contracts, the ``model`` params and train-split statistics.

    ``stats`` holds one entry per numerical feature name (fitted by the caller on the train split).
    The DC-002 compatibility section says which dataset column feeds each DC-003 feature.
    """
    compat = dc002.compatibility
    cat_source = {c.name: c.column for c in compat.categorical}
    num_source = {n.name: n.column for n in compat.numerical}
    text_source = {t.name: t.column for t in compat.text}

    def categorical(name: str, tower: str) -> CategoricalSpec:
        declared = getattr(dc003, tower).categorical_embeddings[name]
        if name not in cat_source:
            raise KeyError(f"contracts/dc002.yaml: compatibility.categorical: no column for {name!r}")
        return CategoricalSpec(
            name=name,
            source=cat_source[name],
            vocab_size=declared.vocab_size,
            embedding_dim=declared.embedding_dim,
        )

    def numerical(features: list[NumericalFeature]) -> list[NumericSpec]:
        missing = [f.name for f in features if f.name not in num_source or f.name not in stats]
        if missing:
            raise KeyError(f"no dataset column or statistics for numerical features {missing}")
        return [_numeric_spec(f, num_source[f.name], stats[f.name]) for f in features]

    ut, it = dc003.user_tower, dc003.item_tower
    seq = ut.sequence_encoder
    if params.max_history > seq.positional_encoding.max_len:
        raise ValueError(
            f"model.max_history {params.max_history} exceeds the positional table "
            f"({seq.positional_encoding.max_len})"
        )
    item = ItemTowerConfig(
        categorical=[categorical(n, "item_tower") for n in it.categorical_embeddings],
        numerical=numerical(it.numerical_features),
        text=[
            TextSpec(
                name=t.name,
                source=text_source[t.name],
                embedding_dim=t.embedding_dim,
                projection_dim=t.projection_dim,
            )
            for t in it.text_features
        ],
        dense=_dense(it.dense_layers),
        projection=_dense(it.projection_head),
        linear_skip=params.item_linear_skip,
    )
    item_input_width = item.input_width()
    attrs = [categorical(name, "item_tower") for name in params.history_item_features]
    sequence = SequenceSpec(
        max_len=params.max_history,
        d_model=seq.d_model,
        num_heads=seq.num_heads,
        num_layers=seq.num_layers,
        feedforward_dim=params.feedforward_dim,
        dropout=seq.dropout,
        n_items=n_items,
        item_attributes=[a.model_copy(update={"embedding_dim": seq.d_model}) for a in attrs],
        item_dim=params.embedding_dim + item_input_width,
        item_id_embedding=params.history_item_id,
        residual_dim=params.embedding_dim if params.history_residual else 0,
        residual_centred=params.history_residual_centred,
        residual_inputs=params.history_residual_inputs,
    )
    user = UserTowerConfig(
        categorical=[categorical(n, "user_tower") for n in ut.categorical_embeddings],
        numerical=numerical(ut.numerical_features),
        sequence=sequence,
        dense=_dense(ut.dense_layers),
        projection=_dense(ut.projection_head),
        linear_skip=params.user_linear_skip,
    )
    if user.projection[-1].units != params.embedding_dim or item.projection[-1].units != params.embedding_dim:
        raise ValueError(f"projection heads must end at embedding_dim {params.embedding_dim}")
    if params.category_feature not in it.categorical_embeddings:
        raise ValueError(f"model.category_feature {params.category_feature!r} is not an item categorical")
    return ModelConfig(
        contract_version=dc003.contract.version,
        embedding_dim=params.embedding_dim,
        temperature=dc003.global_config.temperature,
        ema_decay=dc003.phases.phase_4.ema_regularization.decay_rate,
        n_items=n_items,
        category_feature=params.category_feature,
        user_tower=user,
        item_tower=item,
    )
