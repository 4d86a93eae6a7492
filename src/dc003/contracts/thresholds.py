"""Threshold strings of the contracts: ``"<op> <number> [unit]"``, e.g. ``"< 5 ms"``, ``">= 80 %"``.

A threshold keeps the text as written (contracts are reviewed as text) and exposes a normalised value
in base units (seconds, bytes, fractions, per-second rates) so gates and the diff compare like with like.
"""

from __future__ import annotations

import math
import re
from typing import Any, Literal

from pydantic import GetCoreSchemaHandler
from pydantic_core import core_schema

Op = Literal["<", "<=", ">", ">="]

# unit -> (dimension, factor to base unit)
UNITS: dict[str, tuple[str, float]] = {
    "": ("ratio", 1.0),
    "%": ("ratio", 0.01),
    "ms": ("seconds", 1e-3),
    "s": ("seconds", 1.0),
    "KB": ("bytes", 1e3),
    "MB": ("bytes", 1e6),
    "GB": ("bytes", 1e9),
    "/s": ("rate", 1.0),
}

_PATTERN = re.compile(r"^\s*(<=|>=|<|>)\s*([-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)\s*(%|ms|s|KB|MB|GB|/s)?\s*$")


class Threshold:
    """An immutable comparison bound parsed from the contract text."""

    __slots__ = ("number", "op", "text", "unit")

    def __init__(self, op: Op, number: float, unit: str = "") -> None:
        if unit not in UNITS:
            raise ValueError(f"unknown unit {unit!r} (known: {', '.join(u or '(none)' for u in UNITS)})")
        if not math.isfinite(number):
            raise ValueError(f"threshold must be a finite number (got {number})")
        self.op: Op = op
        self.number = float(number)
        self.unit = unit
        num = f"{number:g}"
        self.text = f"{op} {num} {unit}".strip()

    @classmethod
    def parse(cls, text: str) -> Threshold:
        match = _PATTERN.match(text)
        if not match:
            raise ValueError(f"must be a threshold like '< 5 ms', '>= 0.10' or '>= 80 %' (got {text!r})")
        op, number, unit = match.group(1), float(match.group(2)), match.group(3) or ""
        return cls(op, number, unit)  # type: ignore[arg-type]

    @property
    def dimension(self) -> str:
        return UNITS[self.unit][0]

    @property
    def value(self) -> float:
        """The bound in base units (seconds, bytes, fraction, per second)."""
        return self.number * UNITS[self.unit][1]

    @property
    def is_upper_bound(self) -> bool:
        return self.op in ("<", "<=")

    def passes(self, observed: float) -> bool:
        """Whether ``observed`` (in base units) satisfies the bound. NaN never passes."""
        if observed is None or (isinstance(observed, float) and math.isnan(observed)):
            return False
        bound = self.value
        return {
            "<": observed < bound,
            "<=": observed <= bound,
            ">": observed > bound,
            ">=": observed >= bound,
        }[self.op]

    def tighter_than(self, other: Threshold) -> bool:
        """True when self accepts strictly fewer values than ``other`` (same direction)."""
        if self.is_upper_bound != other.is_upper_bound:
            return False
        if self.value != other.value:
            return self.value < other.value if self.is_upper_bound else self.value > other.value
        # same number: strict is tighter than inclusive
        return self.op in ("<", ">") and other.op in ("<=", ">=")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Threshold) and (self.op, self.value, self.dimension) == (
            other.op,
            other.value,
            other.dimension,
        )

    def __hash__(self) -> int:
        return hash((self.op, self.value, self.dimension))

    def __repr__(self) -> str:
        return f"Threshold({self.text!r})"

    def __str__(self) -> str:
        return self.text

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(
            _coerce,
            serialization=core_schema.plain_serializer_function_ser_schema(lambda t: t.text),
        )


def _coerce(value: Any) -> Threshold:
    if isinstance(value, Threshold):
        return value
    if isinstance(value, str):
        return Threshold.parse(value)
    raise ValueError(f"must be a threshold string like '< 5 ms' (got {value!r})")
