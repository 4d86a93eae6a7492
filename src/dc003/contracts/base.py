"""Base model for every declaration: unknown keys are errors, loaded values are immutable."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

SEMVER = r"^\d+\.\d+\.\d+$"


class Declared(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class IntRange(Declared):
    """An inclusive range such as the document's ``epochs: 2-3``."""

    min: int = Field(ge=0)
    max: int = Field(ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> IntRange:
        if self.min > self.max:
            raise ValueError(f"min must be <= max (got min={self.min}, max={self.max})")
        return self

    def __contains__(self, value: object) -> bool:
        return isinstance(value, int) and self.min <= value <= self.max

    def __str__(self) -> str:
        return str(self.min) if self.min == self.max else f"{self.min}-{self.max}"


class ContractHeader(Declared):
    """The metadata every dc contract opens with (each contract adds its own fields)."""

    id: str = Field(pattern=r"^DC-\d{3}$")
    title: str
    version: str = Field(pattern=SEMVER)
    owner: str
    status: Literal["draft", "active", "deprecated", "retired"]
    created: dt.date
    review_date: dt.date
    next_review: dt.date
