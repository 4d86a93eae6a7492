"""Typed form of ``contracts/dc002.yaml`` (the DC-002 training dataset contract).

Structure only: every cross-reference (a rule naming a column, a ``from:`` naming a raw column, a
compatibility entry naming a DC-003 feature) is checked by :func:`dc003.contracts.dc002_lint.lint_dc002`,
so one broken reference is reported as a finding rather than hiding every other one behind a load error.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from typing import Any, Literal

from pydantic import Field, PositiveInt, field_validator, model_validator

from dc003.contracts.base import ContractHeader, Declared

IDENT = r"^[A-Za-z][A-Za-z0-9_]*$"
SPLITS: tuple[str, str, str] = ("train", "val", "test")

ColumnType = Literal["string", "bool", "int8", "int16", "int32", "int64", "float32", "float64", "date"]
MatchKind = Literal[
    "missing",
    "unparseable",
    "pattern",
    "out_of_range",
    "not_in_vocabulary",
    "case_variant",
    "duplicate_key",
    "orphan",
    "same_day_repeat",
    "lost_leading_zero",
    "not_utf8",
]
Action = Literal["repair", "quarantine", "accept"]
RepairKind = Literal["fill_empty", "set_null", "canonical_spelling", "aggregate", "zero_pad"]
Severity = Literal["error", "warning"]
Bound = float | dt.date
VocabValue = str | int | float


# ---------------------------------------------------------------- metadata


class Consumer(Declared):
    id: str = Field(pattern=r"^DC-\d{3}$")
    name: str
    contract: str


class ContractMeta(ContractHeader):
    brief: str
    consumers: list[Consumer]


# ---------------------------------------------------------------- columns and tables


class ColumnSpec(Declared):
    type: ColumnType
    nullable: bool = False
    required: bool = True  # raw inputs: a missing optional column is read as all-null
    pattern: str | None = None
    format: str | None = None  # raw dates: strftime format
    min: Bound | None = None
    max: Bound | None = None
    min_exclusive: bool = False
    max_exclusive: bool = False
    vocabulary: str | None = None
    unique: bool = False
    from_: str | None = Field(default=None, alias="from")  # "<raw file>.<column>": inherit its constraints

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"pattern does not compile ({exc})") from exc
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ColumnSpec:
        if self.pattern is not None and self.type != "string":
            raise ValueError(f"pattern is only for string columns (type is {self.type})")
        if self.format is not None and self.type != "date":
            raise ValueError(f"format is only for date columns (type is {self.type})")
        if self.min is not None and self.max is not None and _as_num(self.min) > _as_num(self.max):
            raise ValueError(f"min must be <= max (got min={self.min}, max={self.max})")
        return self

    @property
    def digits(self) -> int | None:
        """N when the pattern is exactly N decimal digits (``^[0-9]{N}$``): an id a numeric reader can
        shorten by dropping its leading zero."""
        found = _DIGITS.fullmatch(self.pattern or "")
        return int(found.group(1)) if found else None


_DIGITS = re.compile(r"\^(?:\[0-9\]|\\d)\{(\d+)\}\$")


def _as_num(value: Bound) -> float:
    return float(value.toordinal()) if isinstance(value, dt.date) else float(value)


class Reference(Declared):
    """A foreign key: every value of ``column`` is a ``key`` of ``table``."""

    column: str
    table: str
    key: str


class RawFile(Declared):
    file: str = Field(pattern=IDENT)  # stem: <file>.csv or <file>.parquet
    key: list[str] = Field(default_factory=list)
    columns: dict[str, ColumnSpec]
    references: list[Reference] = Field(default_factory=list)


class RawInputs(Declared):
    articles: RawFile
    customers: RawFile
    transactions: RawFile

    def items(self) -> list[tuple[str, RawFile]]:
        return [
            ("articles", self.articles),
            ("customers", self.customers),
            ("transactions", self.transactions),
        ]

    def get(self, name: str) -> RawFile | None:
        return dict(self.items()).get(name)


class TableSpec(Declared):
    file: str = Field(pattern=r"^[a-z_{}]+\.parquet$")  # `{split}` marks one file per split
    optional: bool = False
    key: list[str] = Field(default_factory=list)
    dense_index: str | None = None
    sorted_by: list[str] = Field(default_factory=list)
    columns: dict[str, ColumnSpec]
    references: list[Reference] = Field(default_factory=list)

    @property
    def per_split(self) -> bool:
        return "{split}" in self.file

    def file_for(self, split: str | None = None) -> str:
        if self.per_split:
            if split is None:
                raise ValueError(f"{self.file} is one file per split: name the split")
            return self.file.replace("{split}", split)
        return self.file


class Tables(Declared):
    items: TableSpec
    items_split: TableSpec
    users_split: TableSpec
    interactions: TableSpec
    cold_users: TableSpec
    cold_items: TableSpec
    quarantine: TableSpec
    oracle: TableSpec

    def all(self) -> list[tuple[str, TableSpec]]:
        return [(name, getattr(self, name)) for name in type(self).model_fields]

    def get(self, name: str) -> TableSpec | None:
        return getattr(self, name, None) if name in type(self).model_fields else None


# ---------------------------------------------------------------- mess handling


class MessRule(Declared):
    rule: str = Field(pattern=r"^[a-z][a-z0-9_]*$")  # the reason code written to the quarantine
    file: str  # a key of `raw`
    columns: list[str] = Field(min_length=1)
    match: list[MatchKind] = Field(min_length=1)
    action: Action
    repair: RepairKind | None = None
    reason: str

    @model_validator(mode="after")
    def _repair_iff_action(self) -> MessRule:
        if self.action == "repair" and self.repair is None:
            raise ValueError("action repair needs a `repair` kind")
        if self.action != "repair" and self.repair is not None:
            raise ValueError(f"`repair` is only for action repair (action is {self.action})")
        return self


class MessHandling(Declared):
    max_reject_share: float = Field(ge=0.0, le=1.0)
    rules: list[MessRule] = Field(min_length=1)

    def rule(self, code: str) -> MessRule:
        for r in self.rules:
            if r.rule == code:
                return r
        raise KeyError(code)

    def find(self, file: str, column: str, kind: MatchKind) -> MessRule | None:
        """The first rule (in declared order) that handles ``kind`` on ``file.column``."""
        for r in self.rules:
            if r.file == file and column in r.columns and kind in r.match:
                return r
        return None


# ---------------------------------------------------------------- splits and features


class Splits(Declared):
    anchor: Literal["last_day"]
    test_days: PositiveInt
    val_days: PositiveInt
    train_window_days: PositiveInt
    min_history_days: int = Field(ge=0)


class Bucket(Declared):
    min: float
    max: float

    @model_validator(mode="after")
    def _ordered(self) -> Bucket:
        if self.min > self.max:
            raise ValueError(f"min must be <= max (got min={self.min}, max={self.max})")
        return self


class AgeGroup(Declared):
    vocabulary: str
    buckets: dict[str, Bucket] = Field(min_length=1)


class PreferredChannel(Declared):
    statistic: Literal["majority_rows"]
    ties: Literal["unknown"]
    no_purchases: Literal["unknown"]


class Definition(Declared):
    definition: str
    no_purchases: float


class UserFeatures(Declared):
    static: list[str]
    age_group: AgeGroup
    preferred_channel: PreferredChannel
    lifetime_days: Definition
    total_purchases: Definition
    avg_basket_size: Definition


class PriceNormalized(Declared):
    statistic: Literal["mean_price_before_cutoff"]
    scaling: Literal["min_max"]
    cold_imputation: Literal["median", "zero"]


class PriceCategory(Declared):
    vocabulary: str
    statistic: Literal["mean_price_before_cutoff"]
    buckets: Literal["quantile"]
    cold: Literal["unknown"]


class Popularity(Declared):
    window_days: PositiveInt
    statistic: Literal["sum_quantity"]
    scaling: Literal["min_max"]


class ItemFeatures(Declared):
    price_normalized: PriceNormalized
    price_category: PriceCategory
    popularity_score: Popularity


class Features(Declared):
    users: UserFeatures
    items: ItemFeatures


# ---------------------------------------------------------------- point in time


HistoryRuleKind = Literal["same_user", "before_target", "complete", "max_length"]
Recompute = Literal["quantity_before_cutoff", "lifetime_before_cutoff", "quantity_in_window_before_cutoff"]


class HistoryRule(Declared):
    table: str
    max_length_ref: str  # key path in the DC-003 contract
    rules: list[HistoryRuleKind] = Field(min_length=1)


class FeatureRecompute(Declared):
    table: str
    column: str
    recompute: Recompute


class ColdSet(Declared):
    table: str
    key: str
    definition: str


class PointInTime(Declared):
    history: HistoryRule
    features: list[FeatureRecompute]
    cold_sets: list[ColdSet]


# ---------------------------------------------------------------- distributions


Metric = Literal["null_share", "mean_quantity_per_key", "value_share", "median", "mean", "weekly_log_ratio"]


class Distribution(Declared):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    table: str
    split: Literal["train", "val", "test"] | None = None
    column: str
    metric: Metric
    value: VocabValue | None = None  # value_share: the value whose share is bounded
    expected: float
    tolerance: float  # lint reports a negative or out-of-domain tolerance
    relative: bool = False
    severity: Severity

    def bounds(self) -> tuple[float, float]:
        """The accepted interval [low, high]."""
        spread = abs(self.expected) * self.tolerance if self.relative else self.tolerance
        return self.expected - spread, self.expected + spread


# ---------------------------------------------------------------- DC-003 compatibility


Tower = Literal["user_tower", "item_tower"]


class CategoricalCompat(Declared):
    name: str  # the DC-003 feature name
    tower: Tower
    column: str  # "<table>.<column>"
    policy: Literal["declared_order", "top_k_plus_unknown"]
    max_unknown_share: float

    @property
    def table(self) -> str:
        return self.column.partition(".")[0]

    @property
    def column_name(self) -> str:
        return self.column.partition(".")[2]

    @property
    def encoded(self) -> str:
        return f"{self.column_name}_idx"

    @property
    def dc003_path(self) -> str:
        return f"{self.tower}.categorical_embeddings.{self.name}.vocab_size"


class FeatureCompat(Declared):
    name: str
    tower: Tower
    column: str

    @property
    def table(self) -> str:
        return self.column.partition(".")[0]

    @property
    def column_name(self) -> str:
        return self.column.partition(".")[2]


class Compatibility(Declared):
    contract: str
    categorical: list[CategoricalCompat]
    numerical: list[FeatureCompat]
    text: list[FeatureCompat]

    def categorical_for(self, table: str) -> list[CategoricalCompat]:
        return [c for c in self.categorical if c.table == table]


class Clarification(Declared):
    path: str
    value: Any
    reason: str


class Dc002Contract(Declared):
    contract: ContractMeta
    vocabularies: dict[str, list[VocabValue]]
    raw: RawInputs
    mess_handling: MessHandling
    splits: Splits
    features: Features
    tables: Tables
    point_in_time: PointInTime
    distributions: list[Distribution]
    compatibility: Compatibility
    clarifications: list[Clarification] = Field(default_factory=list)

    def raw_column(self, ref: str) -> ColumnSpec | None:
        """The raw column named by ``"<raw file>.<column>"``."""
        file, _, column = ref.partition(".")
        raw = self.raw.get(file)
        return raw.columns.get(column) if raw is not None else None

    def effective(self, spec: ColumnSpec) -> ColumnSpec:
        """``spec`` with the constraints it inherits through ``from:`` filled in (its own type kept)."""
        if spec.from_ is None:
            return spec
        source = self.raw_column(spec.from_)
        if source is None:
            return spec
        inherited: dict[str, Any] = {}
        for name in ("pattern", "min", "max", "min_exclusive", "max_exclusive", "vocabulary"):
            own = getattr(spec, name)
            if own in (None, False):
                inherited[name] = getattr(source, name)
        if source.type == "date" and spec.type != "date":
            # dates become int32 days since 1970-01-01
            for name in ("min", "max"):
                value = inherited.get(name, getattr(spec, name))
                if isinstance(value, dt.date):
                    inherited[name] = float((value - dt.date(1970, 1, 1)).days)
        return spec.model_copy(update=inherited)

    def vocabulary(self, name: str) -> list[VocabValue]:
        return list(self.vocabularies[name])

    def iter_table_columns(self) -> Iterator[tuple[str, TableSpec, str, ColumnSpec]]:
        for tname, table in self.tables.all():
            for cname, spec in table.columns.items():
                yield tname, table, cname, spec
