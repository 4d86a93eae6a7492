"""Compile ``contracts/dc002.yaml`` into engine-neutral rules: the ONE place a check is derived.

Each :class:`Rule` names a frame (a dataset file, or a derived view of it built by
:mod:`dc003.data.validation.frames`), a kind and its parameters. :mod:`.pandera_engine` and
:mod:`.gx_engine` translate every kind mechanically, so Pandera and Great Expectations enforce the same
rule set and the parity test can break each kind once.

Data-dependent parameters (the row count of a dense parent, the DC-003 vocab sizes) are resolved here
from the dataset's own files, never typed into the contract twice.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Literal

from dc003.contracts.dc002 import ColumnSpec, Dc002Contract, TableSpec
from dc003.contracts.dc003 import Dc003Contract
from dc003.data.layout import SPLITS

Kind = Literal[
    "dtype",  # includes existence: a missing column fails its type rule
    "not_null",
    "between",
    "in_set",
    "pattern",
    "unique",
    "compound_unique",
    "increasing",
    "pair_less",
    "pair_equal",
    "mean_between",
    "median_between",
    "null_share_between",
    "unique_count_at_most",
]
KINDS: tuple[Kind, ...] = Kind.__args__  # type: ignore[attr-defined]
Severity = Literal["error", "warning"]

EXPECTED = "__expected"  # suffix of a recomputed column compared with the stored one
UNKNOWN = "__unknown"  # suffix of the 0/1 indicator "encoded as the unknown bucket"
ORDER = "__order"  # lexicographic sort key of a table sorted by several columns


@dataclass(frozen=True)
class Rule:
    frame: str  # the frame validated: a dataset file name, or "<file>:<view>" for a derived view
    kind: Kind
    column: str | None  # the column the rule is about (None: table-level)
    name: str  # short rule name shown in reports, e.g. "range", "point_in_time.before_target"
    source: str  # contract key path it was compiled from
    params: dict[str, Any] = field(default_factory=dict)
    severity: Severity = "error"

    @property
    def id(self) -> str:
        return f"{self.frame}|{self.column or '-'}|{self.name}"

    @property
    def file(self) -> str:
        return self.frame.split(":", 1)[0]

    def describe(self) -> str:
        p = self.params
        k = self.kind
        if k == "between":
            lo = "(" if p.get("strict_min") else "["
            hi = ")" if p.get("strict_max") else "]"
            return f"in {lo}{p.get('min')}, {p.get('max')}{hi}"
        if k in {"mean_between", "median_between", "null_share_between"}:
            return f"{k.split('_between')[0]} in [{_fmt(p.get('min'))}, {_fmt(p.get('max'))}]"
        if k == "in_set":
            return f"in {p['values']}"
        if k == "pattern":
            return f"matches {p['pattern']}"
        if k == "dtype":
            return f"type {p['type']}"
        if k in {"pair_less", "pair_equal"}:
            op = "<" if k == "pair_less" else "=="
            return f"{self.column} {op} {p['other']}"
        if k == "compound_unique":
            return f"unique {p['columns']}"
        if k == "increasing":
            return "strictly increasing" if p.get("strictly") else "non-decreasing"
        if k == "unique_count_at_most":
            return f"at most {p['max']} distinct values"
        return k.replace("_", " ")


def _fmt(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class DatasetFacts:
    """What the rules need to know about the dataset being checked (read from its own files)."""

    rows: dict[str, int]  # file -> row count
    has_oracle: bool


def instances(table: TableSpec) -> list[tuple[str, str | None]]:
    """(file, split) for each file of a table."""
    if table.per_split:
        return [(table.file_for(s), s) for s in SPLITS]
    return [(table.file, None)]


def _bound(value: float | dt.date | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, dt.date):
        return float((value - dt.date(1970, 1, 1)).days)
    return float(value)


def column_rules(
    contract: Dc002Contract, frame: str, column: str, spec: ColumnSpec, source: str
) -> list[Rule]:
    spec = contract.effective(spec)
    out = [Rule(frame, "dtype", column, "type", f"{source}.type", {"type": spec.type})]
    if not spec.nullable:
        out.append(Rule(frame, "not_null", column, "not_null", f"{source}.nullable"))
    if spec.min is not None or spec.max is not None:
        out.append(
            Rule(
                frame,
                "between",
                column,
                "range",
                f"{source}.min/max",
                {
                    "min": _bound(spec.min),
                    "max": _bound(spec.max),
                    "strict_min": spec.min_exclusive,
                    "strict_max": spec.max_exclusive,
                },
            )
        )
    if spec.vocabulary is not None:
        values = contract.vocabulary(spec.vocabulary)
        out.append(
            Rule(frame, "in_set", column, "vocabulary", f"vocabularies.{spec.vocabulary}", {"values": values})
        )
    if spec.pattern is not None:
        out.append(Rule(frame, "pattern", column, "pattern", f"{source}.pattern", {"pattern": spec.pattern}))
    if spec.unique:
        out.append(Rule(frame, "unique", column, "unique", f"{source}.unique"))
    return out


def compile_rules(contract: Dc002Contract, dc003: Dc003Contract, facts: DatasetFacts) -> list[Rule]:
    rules: list[Rule] = []
    for tname, table in contract.tables.all():
        if table.optional and not facts.has_oracle and tname == "oracle":
            continue
        for file, split in instances(table):
            rules += _table_rules(contract, dc003, facts, tname, table, file, split)
    rules += _history_rules(contract, dc003, facts)
    rules += _cold_rules(contract)
    rules += _split_rules(contract)
    rules += _distribution_rules(contract)
    return rules


def _table_rules(
    contract: Dc002Contract,
    dc003: Dc003Contract,
    facts: DatasetFacts,
    tname: str,
    table: TableSpec,
    file: str,
    split: str | None,
) -> list[Rule]:
    base = f"tables.{tname}"
    rules: list[Rule] = []
    for column, spec in table.columns.items():
        rules += column_rules(contract, file, column, spec, f"{base}.columns.{column}")
    n = facts.rows.get(file, 0)
    if table.dense_index is not None:
        d = table.dense_index
        rules.append(Rule(file, "between", d, "dense_index", f"{base}.dense_index", {"min": 0, "max": n - 1}))
        rules.append(Rule(file, "unique", d, "dense_index.unique", f"{base}.dense_index"))
    if len(table.key) > 1:
        rules.append(Rule(file, "compound_unique", None, "key", f"{base}.key", {"columns": list(table.key)}))
    elif table.key and table.key[0] != table.dense_index:
        rules.append(Rule(file, "unique", table.key[0], "key", f"{base}.key"))
    if table.sorted_by == [table.dense_index]:
        rules.append(
            Rule(file, "increasing", table.dense_index, "sorted", f"{base}.sorted_by", {"strictly": True})
        )
    elif len(table.sorted_by) > 1:
        rules.append(Rule(file, "increasing", ORDER, "sorted", f"{base}.sorted_by", {"strictly": False}))
    for i, ref in enumerate(table.references):
        parent = contract.tables.get(ref.table)
        assert parent is not None
        parent_file = parent.file_for(split or "train")
        rows = facts.rows.get(parent_file, 0)
        rules.append(
            Rule(
                file,
                "between",
                ref.column,
                f"references.{ref.table}",
                f"{base}.references[{i}]",
                {"min": 0, "max": rows - 1, "parent": parent_file},
            )
        )
    for entry in contract.compatibility.categorical_for(tname):
        src = f"compatibility.categorical[{entry.name}]"
        size = dc003.user_tower if entry.tower == "user_tower" else dc003.item_tower
        vocab_size = size.categorical_embeddings[entry.name].vocab_size
        enc = entry.encoded
        rules += [
            Rule(file, "dtype", enc, "type", src, {"type": "int16"}),
            Rule(file, "not_null", enc, "not_null", src),
            Rule(
                file,
                "between",
                enc,
                "vocab_size",
                f"{src} (dc003 {entry.dc003_path})",
                {"min": 0, "max": vocab_size - 1},
            ),
            Rule(file, "pair_equal", enc, "encoding", f"{src} (vocab.json)", {"other": enc + EXPECTED}),
            Rule(
                file,
                "unique_count_at_most",
                entry.column_name,
                "vocab_overflow",
                f"{src}.policy={entry.policy}",
                {"max": vocab_size - 1, "policy": entry.policy, "vocab_size": vocab_size},
                severity="warning",
            ),
            Rule(
                file,
                "mean_between",
                enc + UNKNOWN,
                "unknown_share",
                f"{src}.max_unknown_share",
                {"min": 0.0, "max": entry.max_unknown_share},
            ),
        ]
    for i, f in enumerate(contract.point_in_time.features):
        if f.table == tname:
            rules.append(
                Rule(
                    file,
                    "pair_equal",
                    f.column,
                    f"point_in_time.features.{f.recompute}",
                    f"point_in_time.features[{i}]",
                    {"other": f.column + EXPECTED},
                )
            )
    if tname == contract.point_in_time.history.table:
        rules.append(
            Rule(
                file,
                "between",
                "hist_end",
                "history.bounds",
                "point_in_time.history",
                {"min": 0, "max": n - 1},
            )
        )
        rules.append(
            Rule(file, "pair_equal", "split", "split_assignment", "splits", {"other": "split" + EXPECTED})
        )
    return rules


def history_max_length(contract: Dc002Contract, dc003: Dc003Contract) -> int:
    node: Any = dc003
    for part in contract.point_in_time.history.max_length_ref.split("."):
        node = node[part] if isinstance(node, dict) else getattr(node, part)
    return int(node)


def _history_rules(contract: Dc002Contract, dc003: Dc003Contract, facts: DatasetFacts) -> list[Rule]:
    h = contract.point_in_time.history
    table = contract.tables.get(h.table)
    assert table is not None
    frame = f"{table.file}:history"
    src = "point_in_time.history"
    out: list[Rule] = []
    for kind in h.rules:
        name = f"point_in_time.{kind}"
        if kind == "same_user":
            out.append(Rule(frame, "pair_equal", "hist_first_user", name, src, {"other": "user_idx"}))
            out.append(Rule(frame, "pair_equal", "hist_last_user", name, src, {"other": "user_idx"}))
        elif kind == "before_target":
            out.append(Rule(frame, "pair_less", "hist_last_day", name, src, {"other": "day"}))
        elif kind == "complete":
            out.append(Rule(frame, "pair_equal", "hist_start", name, src, {"other": "hist_start" + EXPECTED}))
            out.append(Rule(frame, "pair_equal", "hist_end", name, src, {"other": "hist_end" + EXPECTED}))
        elif kind == "max_length":
            cap = history_max_length(contract, dc003)
            out.append(
                Rule(frame, "between", "hist_len", name, f"{src}.max_length_ref", {"min": 0, "max": cap})
            )
    return out


def _cold_rules(contract: Dc002Contract) -> list[Rule]:
    out = []
    for i, s in enumerate(contract.point_in_time.cold_sets):
        table = contract.tables.get(s.table)
        assert table is not None
        frame = f"{table.file}:recompute"
        out.append(
            Rule(
                frame,
                "pair_equal",
                "listed",
                "point_in_time.cold_set",
                f"point_in_time.cold_sets[{i}]",
                {"other": "expected"},
            )
        )
    return out


def _split_rules(contract: Dc002Contract) -> list[Rule]:
    frame = "splits.json:lengths"
    return [
        Rule(
            frame,
            "pair_equal",
            "days",
            "split_length",
            "splits.test_days/val_days/train_window_days",
            {"other": "days" + EXPECTED},
        ),
        Rule(frame, "in_set", "split", "split_names", "vocabularies.split", {"values": list(SPLITS)}),
    ]


def weekly_frame(file: str) -> str:
    return f"{file}:weekly"


def per_key_frame(file: str, key: str) -> str:
    return f"{file}:per_{key}"


def value_indicator(column: str, value: Any) -> str:
    return f"{column}__is_{value}"


def _distribution_rules(contract: Dc002Contract) -> list[Rule]:
    out = []
    for d in contract.distributions:
        table = contract.tables.get(d.table)
        assert table is not None
        file = table.file_for(d.split) if table.per_split else table.file
        low, high = d.bounds()
        # a distribution is H&M's: legitimate other data may break it, so say where to relax it
        src = (
            f"contracts/dc002.yaml distributions[{d.name}]: for data unlike H&M relax its bounds "
            "or set severity: warning"
        )
        name = f"distribution.{d.name}"
        bounds = {"min": low, "max": high}
        if d.metric == "null_share":
            out.append(Rule(file, "null_share_between", d.column, name, src, bounds, d.severity))
        elif d.metric == "value_share":
            out.append(
                Rule(file, "mean_between", value_indicator(d.column, d.value), name, src, bounds, d.severity)
            )
        elif d.metric == "median":
            out.append(Rule(file, "median_between", d.column, name, src, bounds, d.severity))
        elif d.metric == "mean":
            out.append(Rule(file, "mean_between", d.column, name, src, bounds, d.severity))
        elif d.metric == "mean_quantity_per_key":
            out.append(
                Rule(per_key_frame(file, d.column), "mean_between", "quantity", name, src, bounds, d.severity)
            )
        elif d.metric == "weekly_log_ratio":
            out.append(Rule(weekly_frame(file), "between", "log_ratio", name, src, bounds, d.severity))
    return out
