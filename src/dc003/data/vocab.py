"""Categorical encodings for DC-003 under the contract's overflow policies.

``declared_order``: the column's vocabulary, in declared order, at indices 1..n. ``top_k_plus_unknown``:
the vocab_size - 1 most frequent values (rows of the table, ties by value) at 1..vocab_size-1. Index 0
holds null and every value left out (the overflow), which is reported, never hidden.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dc003.contracts.dc002 import CategoricalCompat, Dc002Contract
from dc003.contracts.dc003 import Dc003Contract
from dc003.data.layout import UNKNOWN_INDEX

if TYPE_CHECKING:
    import polars as pl


@dataclass(frozen=True)
class Encoding:
    entry: CategoricalCompat
    vocab_size: int
    values: tuple[str, ...]  # known values; value i is index i + 1
    distinct: int  # distinct non-null values seen when the encoding was fitted
    overflow: tuple[tuple[str, int], ...]  # (value, rows) left out, most frequent first

    @property
    def mapping(self) -> dict[str, int]:
        return {v: i + 1 for i, v in enumerate(self.values)}

    def encode(self, column: pl.Expr) -> pl.Expr:
        import polars as pl

        return (
            column.replace_strict(self.mapping, default=UNKNOWN_INDEX, return_dtype=pl.Int16)
            .fill_null(UNKNOWN_INDEX)
            .alias(self.entry.encoded)
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "column": self.entry.column,
            "encoded": f"{self.entry.table}.{self.entry.encoded}",
            "policy": self.entry.policy,
            "vocab_size": self.vocab_size,
            "values": [None, *self.values],
            "distinct_values": self.distinct,
            "overflow_values": len(self.overflow),
            "overflow_examples": [{"value": v, "rows": n} for v, n in self.overflow[:10]],
        }


def vocab_size(dc003: Dc003Contract, entry: CategoricalCompat) -> int:
    tower = dc003.user_tower if entry.tower == "user_tower" else dc003.item_tower
    return tower.categorical_embeddings[entry.name].vocab_size


def fit_encoding(
    contract: Dc002Contract, dc003: Dc003Contract, entry: CategoricalCompat, values: pl.Series
) -> Encoding:
    """Fit one encoding on the column's values (one per row of the table)."""
    size = vocab_size(dc003, entry)
    counts = (
        values.drop_nulls().value_counts(name="rows").sort(["rows", values.name], descending=[True, False])
    )
    seen = [(str(v), int(n)) for v, n in counts.iter_rows()]
    if entry.policy == "declared_order":
        spec = contract.tables.get(entry.table).columns[entry.column_name]  # type: ignore[union-attr]
        vocab_name = contract.effective(spec).vocabulary or ""
        known = [str(v) for v in contract.vocabulary(vocab_name)]
    else:
        known = [v for v, _ in seen[: size - 1]]
    known_set = set(known)
    overflow = tuple((v, n) for v, n in seen if v not in known_set)
    return Encoding(entry=entry, vocab_size=size, values=tuple(known), distinct=len(seen), overflow=overflow)
