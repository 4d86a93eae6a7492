"""Internal consistency of the DC-002 declaration, and its fit with DC-003.

Errors are declarations the build or the validation could not honour (a rule naming an undeclared column,
a row problem no rule handles, a DC-003 feature with no DC-002 column); warnings are legal but suspicious
(a tolerance that admits every value). The dataset and validate stages refuse to run on error findings.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

from dc003.contracts.dc002 import ColumnSpec, Dc002Contract, MessRule, RawFile
from dc003.contracts.dc003 import Dc003Contract
from dc003.contracts.findings import Finding, Severity

DC002_FILE = "contracts/dc002.yaml"
_SHARE_METRICS = {"null_share", "value_share"}
_NUMERIC = {"int8", "int16", "int32", "int64", "float32", "float64"}


def _f(severity: Severity, paths: list[str], message: str) -> Finding:
    return Finding(severity=severity, contract=DC002_FILE, paths=paths, message=message)


def lint_dc002(contract: Dc002Contract, dc003: Dc003Contract) -> list[Finding]:
    checks = (
        _metadata,
        _vocabularies,
        _raw_inputs,
        _mess_rules,
        _mess_coverage,
        _tables,
        _features,
        _point_in_time,
        _distributions,
        _clarifications,
    )
    findings: list[Finding] = []
    for check in checks:
        findings.extend(check(contract))
    findings.extend(_compatibility(contract, dc003))
    return findings


def errors_of(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.severity == "error"]


def require_clean(contract: Dc002Contract, dc003: Dc003Contract) -> None:
    """Refuse to build or validate on a contract with error findings (one line per finding)."""
    from dc003.errors import Dc003Error

    errors = errors_of(lint_dc002(contract, dc003))
    if errors:
        raise Dc003Error("\n".join(f.line() for f in errors))


# ---------------------------------------------------------------- metadata and vocabularies


def _metadata(c: Dc002Contract) -> Iterator[Finding]:
    m = c.contract
    if m.id != "DC-002":
        yield _f("error", ["contract.id"], f"the dataset contract must be DC-002 (got {m.id})")
    if not m.created <= m.review_date <= m.next_review:
        yield _f(
            "error",
            ["contract.created", "contract.review_date", "contract.next_review"],
            "dates must be ordered created <= review_date <= next_review",
        )


def _vocabularies(c: Dc002Contract) -> Iterator[Finding]:
    for name, values in c.vocabularies.items():
        path = f"vocabularies.{name}"
        if not values:
            yield _f("error", [path], "vocabulary is empty")
        if len(set(values)) != len(values):
            yield _f("error", [path], "vocabulary lists a value twice")
        folded = [str(v).strip().casefold() for v in values]
        if len(set(folded)) != len(folded) and len(set(values)) == len(values):
            yield _f("error", [path], "two values differ only in case: canonical_spelling would be ambiguous")


def _vocab_fits_type(c: Dc002Contract, spec: ColumnSpec, path: str) -> Iterator[Finding]:
    if spec.vocabulary is None:
        return
    if spec.vocabulary not in c.vocabularies:
        yield _f("error", [f"{path}.vocabulary"], f"unknown vocabulary {spec.vocabulary!r}")
        return
    values = c.vocabularies[spec.vocabulary]
    if spec.type == "string":
        bad: list[Any] = [v for v in values if not isinstance(v, str)]
    elif spec.type in _NUMERIC:
        bad = [v for v in values if isinstance(v, str)]
    else:
        bad = []
    if bad:
        yield _f(
            "error",
            [f"{path}.vocabulary", f"vocabularies.{spec.vocabulary}"],
            f"values {bad} do not fit the column type {spec.type}",
        )


# ---------------------------------------------------------------- raw inputs and mess handling


def _raw_inputs(c: Dc002Contract) -> Iterator[Finding]:
    stems = [raw.file for _, raw in c.raw.items()]
    if len(set(stems)) != len(stems):
        yield _f("error", ["raw"], f"two raw inputs share a file name: {stems}")
    for name, raw in c.raw.items():
        base = f"raw.{name}"
        for col in raw.key:
            if col not in raw.columns:
                yield _f("error", [f"{base}.key"], f"key column {col!r} is not declared")
        for cname, spec in raw.columns.items():
            yield from _vocab_fits_type(c, spec, f"{base}.columns.{cname}")
            if spec.type == "date" and spec.format is None:
                yield _f("error", [f"{base}.columns.{cname}.format"], "a raw date column needs a format")
            if spec.from_ is not None:
                yield _f("error", [f"{base}.columns.{cname}.from"], "raw columns cannot inherit (`from`)")
            if spec.unique:
                yield _f("warning", [f"{base}.columns.{cname}.unique"], "raw uniqueness is declared by `key`")
        for i, ref in enumerate(raw.references):
            yield from _raw_reference(c, raw, f"{base}.references[{i}]", ref.column, ref.table, ref.key)


def _raw_reference(
    c: Dc002Contract, raw: RawFile, path: str, column: str, table: str, key: str
) -> Iterator[Finding]:
    if column not in raw.columns:
        yield _f("error", [path], f"reference column {column!r} is not declared")
    target = c.raw.get(table)
    if target is None:
        yield _f("error", [path], f"references unknown raw input {table!r}")
    elif target.key != [key]:
        yield _f("error", [path], f"{table}.{key} is not the key of {table} (key is {target.key})")


def _applicable(kind: str, raw: RawFile, column: str, spec: ColumnSpec) -> str | None:
    """Why ``kind`` can never match ``column`` (None when it can)."""
    if kind == "unparseable" and spec.type == "string":
        return "a string column is always parseable"
    if kind == "pattern" and spec.pattern is None:
        return "the column declares no pattern"
    if kind == "out_of_range" and spec.min is None and spec.max is None:
        return "the column declares no range"
    if kind in {"not_in_vocabulary", "case_variant"} and spec.vocabulary is None:
        return "the column declares no vocabulary"
    if kind == "duplicate_key" and column not in raw.key:
        return "the column is not the file's key"
    if kind == "orphan" and column not in {r.column for r in raw.references}:
        return "the column references no other file"
    if kind == "same_day_repeat" and not raw.references:
        return "only transactions (which reference customers and articles) have same-day repeats"
    if kind == "lost_leading_zero" and spec.digits is None:
        return "the column's pattern is not a fixed number of digits (^[0-9]{N}$)"
    return None


def _free_text(spec: ColumnSpec) -> bool:
    """A text column whose declaration rejects nothing: bytes that are not UTF-8 (read as U+FFFD) would
    be kept as they are unless a rule handles not_utf8 (a pattern, a vocabulary or a parse rejects them)."""
    return spec.type == "string" and spec.pattern is None and spec.vocabulary is None


def _mess_rules(c: Dc002Contract) -> Iterator[Finding]:
    seen: set[str] = set()
    for i, rule in enumerate(c.mess_handling.rules):
        path = f"mess_handling.rules[{rule.rule}]"
        if rule.rule in seen:
            yield _f("error", [path], f"rule code {rule.rule!r} is used twice")
        seen.add(rule.rule)
        raw = c.raw.get(rule.file)
        if raw is None:
            yield _f("error", [f"{path}.file"], f"unknown raw input {rule.file!r} (rule #{i + 1})")
            continue
        for col in rule.columns:
            spec = raw.columns.get(col)
            if spec is None:
                yield _f("error", [f"{path}.columns"], f"column {col!r} is not declared in raw.{rule.file}")
                continue
            for kind in rule.match:
                why = _applicable(kind, raw, col, spec)
                if why is not None:
                    yield _f("error", [f"{path}.match"], f"{kind} cannot match {rule.file}.{col}: {why}")
            yield from _action_fits(rule, col, spec, path)


def _action_fits(rule: MessRule, col: str, spec: ColumnSpec, path: str) -> Iterator[Finding]:
    where = f"{rule.file}.{col}"
    if rule.action == "accept" and "missing" in rule.match and not spec.nullable:
        yield _f(
            "error",
            [path, f"raw.{rule.file}.columns.{col}.nullable"],
            f"accepts missing {where}, not nullable",
        )
    if rule.repair in {"set_null", "fill_empty"} and not spec.nullable:
        yield _f("error", [path], f"repair {rule.repair} on {where}, which is not nullable")
    if rule.repair == "fill_empty" and (spec.type != "string" or rule.match != ["missing"]):
        yield _f("error", [path], "fill_empty repairs missing values of string columns only")
    if rule.repair == "canonical_spelling" and rule.match != ["case_variant"]:
        yield _f("error", [path], "canonical_spelling repairs case_variant matches only")
    if rule.repair == "aggregate" and rule.match != ["same_day_repeat"]:
        yield _f("error", [path], "aggregate repairs same_day_repeat matches only")
    if rule.repair == "zero_pad" and rule.match != ["lost_leading_zero"]:
        yield _f("error", [path], "zero_pad repairs lost_leading_zero matches only")
    if "same_day_repeat" in rule.match and rule.action != "repair":
        yield _f(
            "error", [path], "same_day_repeat must be repaired by aggregate (quarantine would lose sales)"
        )
    if rule.action == "accept" and set(rule.match) - {"missing"}:
        yield _f("error", [path], "only missing values may be accepted as they are")


def _mess_coverage(c: Dc002Contract) -> Iterator[Finding]:
    """Every problem a value can have must be handled by a rule: otherwise the build could not decide."""
    for name, raw in c.raw.items():
        for col, spec in raw.columns.items():
            for kind in (
                "missing",
                "unparseable",
                "pattern",
                "out_of_range",
                "not_in_vocabulary",
                "duplicate_key",
                "orphan",
            ):
                if _applicable(kind, raw, col, spec) is not None:
                    continue
                if c.mess_handling.find(name, col, kind) is None:
                    yield _f(
                        "error",
                        [f"raw.{name}.columns.{col}", "mess_handling.rules"],
                        f"no mess-handling rule handles {kind} on {name}.{col}",
                    )
            if _free_text(spec) and c.mess_handling.find(name, col, "not_utf8") is None:
                yield _f(
                    "error",
                    [f"raw.{name}.columns.{col}", "mess_handling.rules"],
                    f"no mess-handling rule handles not_utf8 on {name}.{col} (free text would keep U+FFFD)",
                )
        if raw.references and not any(
            r.file == name and "same_day_repeat" in r.match for r in c.mess_handling.rules
        ):
            yield _f(
                "error",
                ["mess_handling.rules"],
                f"no rule declares what happens to same-day repeats in {name}",
            )


# ---------------------------------------------------------------- dataset tables


def _tables(c: Dc002Contract) -> Iterator[Finding]:
    files = [t.file for _, t in c.tables.all()]
    if len(set(files)) != len(files):
        yield _f("error", ["tables"], f"two tables share a file name: {files}")
    for tname, table in c.tables.all():
        base = f"tables.{tname}"
        for col in [*table.key, *table.sorted_by]:
            if col not in table.columns:
                yield _f("error", [base], f"key/sort column {col!r} is not declared")
        if table.dense_index is not None:
            spec = table.columns.get(table.dense_index)
            if spec is None or spec.type not in {"int16", "int32", "int64"}:
                yield _f(
                    "error", [f"{base}.dense_index"], "the dense index must be a declared integer column"
                )
            if table.key != [table.dense_index]:
                yield _f("error", [f"{base}.dense_index", f"{base}.key"], "the dense index must be the key")
        for cname, spec in table.columns.items():
            yield from _derived_column(c, f"{base}.columns.{cname}", spec)
        for i, ref in enumerate(table.references):
            path = f"{base}.references[{i}]"
            target = c.tables.get(ref.table)
            if ref.column not in table.columns:
                yield _f("error", [path], f"reference column {ref.column!r} is not declared")
            if target is None:
                yield _f("error", [path], f"references unknown table {ref.table!r}")
            elif target.dense_index != ref.key:
                yield _f(
                    "error",
                    [path, f"tables.{ref.table}.dense_index"],
                    f"{ref.table}.{ref.key} must be the dense index of {ref.table} (checked as 0..rows-1)",
                )


def _derived_column(c: Dc002Contract, path: str, spec: ColumnSpec) -> Iterator[Finding]:
    yield from _vocab_fits_type(c, spec, path)
    if spec.from_ is None:
        return
    source = c.raw_column(spec.from_)
    if source is None:
        yield _f("error", [f"{path}.from"], f"{spec.from_!r} is not a declared raw column")
        return
    for name in ("pattern", "min", "max", "vocabulary"):
        own, theirs = getattr(spec, name), getattr(source, name)
        if own is not None and theirs is not None and own != theirs:
            yield _f(
                "error",
                [f"{path}.{name}", f"raw.{spec.from_.replace('.', '.columns.', 1)}.{name}"],
                f"{name} declared in two places differently ({own!r} vs {theirs!r}); keep it on the raw one",
            )
    if source.nullable and not spec.nullable and source.type != "string":
        yield _f("warning", [f"{path}.nullable"], f"{spec.from_} is nullable but the dataset column is not")


# ---------------------------------------------------------------- features and point in time


def _features(c: Dc002Contract) -> Iterator[Finding]:
    u = c.features.users
    users = c.tables.users_split
    for col in u.static:
        if col not in users.columns:
            yield _f("error", ["features.users.static"], f"{col!r} is not a column of users_split")
    vocab = c.vocabularies.get(u.age_group.vocabulary)
    if vocab is None:
        yield _f(
            "error", ["features.users.age_group.vocabulary"], f"unknown vocabulary {u.age_group.vocabulary!r}"
        )
    elif [str(v) for v in vocab] != list(u.age_group.buckets):
        yield _f(
            "error",
            ["features.users.age_group.buckets", f"vocabularies.{u.age_group.vocabulary}"],
            "age_group buckets and the age_group vocabulary list the groups differently",
        )
    buckets = sorted(u.age_group.buckets.values(), key=lambda b: b.min)
    for a, b in itertools.pairwise(buckets):
        if b.min <= a.max:
            yield _f("error", ["features.users.age_group.buckets"], "age buckets overlap")
    age = c.raw.customers.columns.get("age")
    if (
        age is not None
        and buckets
        and (
            (age.min is not None and buckets[0].min > float(age.min))  # type: ignore[arg-type]
            or (age.max is not None and buckets[-1].max < float(age.max))  # type: ignore[arg-type]
        )
    ):
        yield _f(
            "error",
            ["features.users.age_group.buckets", "raw.customers.columns.age"],
            "buckets miss valid ages",
        )
    pc = c.features.items.price_category
    if pc.vocabulary not in c.vocabularies:
        yield _f(
            "error", ["features.items.price_category.vocabulary"], f"unknown vocabulary {pc.vocabulary!r}"
        )
    if c.features.items.popularity_score.window_days > c.splits.train_window_days + c.splits.min_history_days:
        yield _f(
            "warning",
            ["features.items.popularity_score.window_days"],
            "the popularity window reaches before the guaranteed history of the train cutoff",
        )


def _point_in_time(c: Dc002Contract) -> Iterator[Finding]:
    h = c.point_in_time.history
    table = c.tables.get(h.table)
    if table is None:
        yield _f("error", ["point_in_time.history.table"], f"unknown table {h.table!r}")
    else:
        missing = {"user_idx", "day", "hist_start", "hist_end"} - set(table.columns)
        if missing:
            yield _f("error", ["point_in_time.history.table"], f"{h.table} lacks columns {sorted(missing)}")
        if table.sorted_by[:2] != ["user_idx", "day"]:
            yield _f(
                "error", [f"tables.{h.table}.sorted_by"], "histories are slices only if sorted by user, day"
            )
    for i, f in enumerate(c.point_in_time.features):
        t = c.tables.get(f.table)
        if t is None or f.column not in t.columns:
            yield _f("error", [f"point_in_time.features[{i}]"], f"{f.table}.{f.column} is not declared")
    for i, s in enumerate(c.point_in_time.cold_sets):
        t = c.tables.get(s.table)
        if t is None or s.key not in t.columns or "split" not in t.columns:
            yield _f("error", [f"point_in_time.cold_sets[{i}]"], f"{s.table} needs columns split and {s.key}")


# ---------------------------------------------------------------- distributions


def _distributions(c: Dc002Contract) -> Iterator[Finding]:
    seen: set[str] = set()
    for d in c.distributions:
        path = f"distributions[{d.name}]"
        if d.name in seen:
            yield _f("error", [path], "distribution name used twice")
        seen.add(d.name)
        table = c.tables.get(d.table)
        if table is None:
            yield _f("error", [f"{path}.table"], f"unknown table {d.table!r}")
            continue
        if table.per_split != (d.split is not None):
            need = "needs a split" if table.per_split else "is one file and takes no split"
            yield _f("error", [f"{path}.split"], f"{d.table} {need}")
        spec = table.columns.get(d.column)
        if spec is None:
            yield _f("error", [f"{path}.column"], f"{d.table}.{d.column} is not declared")
            continue
        if d.tolerance < 0 or (d.relative and d.tolerance >= 1):
            rng = "[0, 1)" if d.relative else ">= 0"
            yield _f("error", [f"{path}.tolerance"], f"tolerance out of range: {d.tolerance} (must be {rng})")
        low, high = d.bounds()
        if d.metric in _SHARE_METRICS:
            if not 0 <= d.expected <= 1:
                yield _f("error", [f"{path}.expected"], f"a share must lie in [0, 1] (got {d.expected})")
            elif low <= 0 and high >= 1:
                yield _f(
                    "warning", [f"{path}.tolerance"], "the tolerance admits every share: the check is vacuous"
                )
        if d.metric == "value_share":
            vocab = c.effective(spec).vocabulary
            if d.value is None:
                yield _f("error", [f"{path}.value"], "value_share needs the `value` whose share is bounded")
            elif vocab is not None and d.value not in c.vocabularies.get(vocab, []):
                yield _f("error", [f"{path}.value"], f"{d.value!r} is not in vocabulary {vocab}")
        if d.metric in {"median", "mean"} and spec.type not in _NUMERIC:
            yield _f("error", [f"{path}.metric"], f"{d.metric} of a {spec.type} column")


# ---------------------------------------------------------------- DC-003 compatibility


def _compatibility(c: Dc002Contract, dc003: Dc003Contract) -> Iterator[Finding]:
    towers = {"user_tower": dc003.user_tower, "item_tower": dc003.item_tower}
    covered: set[tuple[str, str]] = set()
    for e in c.compatibility.categorical:
        path = f"compatibility.categorical[{e.name}]"
        covered.add((e.tower, e.name))
        emb = towers[e.tower].categorical_embeddings.get(e.name)
        if emb is None:
            yield _f("error", [path], f"DC-003 has no categorical feature {e.tower}.{e.name}")
            continue
        spec = _column(c, e.table, e.column_name)
        if spec is None:
            yield _f("error", [f"{path}.column"], f"{e.column} is not a declared dataset column")
            continue
        if f"{e.column_name}_idx" in c.tables.get(e.table).columns:  # type: ignore[union-attr]
            yield _f(
                "error", [f"{path}.column"], f"{e.table}.{e.encoded} is declared by this entry, not by hand"
            )
        if not 0 <= e.max_unknown_share <= 1:
            yield _f(
                "error",
                [f"{path}.max_unknown_share"],
                f"a share must lie in [0, 1] (got {e.max_unknown_share})",
            )
        vocab_name = c.effective(spec).vocabulary
        if e.policy == "declared_order":
            if vocab_name is None or vocab_name not in c.vocabularies:
                yield _f("error", [f"{path}.policy"], f"declared_order needs a vocabulary on {e.column}")
            elif len(c.vocabularies[vocab_name]) > emb.vocab_size - 1:
                yield _f(
                    "error",
                    [f"{path}.policy", f"vocabularies.{vocab_name}", f"dc003:{e.dc003_path}"],
                    f"{len(c.vocabularies[vocab_name])} values + unknown exceed the DC-003 vocab_size "
                    f"{emb.vocab_size}",
                )
    for tower_name, tower in towers.items():
        for name in tower.categorical_embeddings:
            if (tower_name, name) not in covered:
                yield _f(
                    "error",
                    ["compatibility.categorical"],
                    f"DC-003 {tower_name}.categorical_embeddings.{name} has no DC-002 column",
                )
    yield from _named_features(
        c, towers, "numerical", {n: [f.name for f in t.numerical_features] for n, t in towers.items()}
    )
    text = {"user_tower": [], "item_tower": [f.name for f in dc003.item_tower.text_features]}
    yield from _named_features(c, towers, "text", text)
    ref = c.point_in_time.history.max_length_ref
    value = _resolve(dc003, ref)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        yield _f("error", ["point_in_time.history.max_length_ref"], f"dc003 {ref} is not a positive integer")


def _named_features(
    c: Dc002Contract, towers: dict[str, Any], group: str, declared: dict[str, list[str]]
) -> Iterator[Finding]:
    entries = getattr(c.compatibility, group)
    covered = set()
    for e in entries:
        path = f"compatibility.{group}[{e.name}]"
        covered.add((e.tower, e.name))
        if e.name not in declared[e.tower]:
            yield _f("error", [path], f"DC-003 has no {group} feature {e.tower}.{e.name}")
        if _column(c, e.table, e.column_name) is None:
            yield _f("error", [f"{path}.column"], f"{e.column} is not a declared dataset column")
    for tower, names in declared.items():
        for name in names:
            if (tower, name) not in covered:
                yield _f(
                    "error",
                    [f"compatibility.{group}"],
                    f"DC-003 {tower} {group} feature {name} has no column",
                )


def _column(c: Dc002Contract, table: str, column: str) -> ColumnSpec | None:
    t = c.tables.get(table)
    return t.columns.get(column) if t is not None else None


def _resolve(obj: Any, dotted: str) -> Any:
    node = obj
    for part in dotted.split("."):
        node = node.get(part) if isinstance(node, dict) else getattr(node, part, None)
        if node is None:
            return None
    return node


# ---------------------------------------------------------------- clarifications


def _clarifications(c: Dc002Contract) -> Iterator[Finding]:
    data = c.model_dump(by_alias=True)
    for i, cl in enumerate(c.clarifications):
        if not _path_exists(data, cl.path):
            yield _f("error", [f"clarifications[{i}].path"], f"{cl.path} does not exist in the contract")


def _path_exists(data: Any, path: str) -> bool:
    node = data
    for part in path.replace("[", ".[").split("."):
        if not part:
            continue
        if part.startswith("["):
            name = part.strip("[]")
            if not isinstance(node, list):
                return False
            match = [e for e in node if isinstance(e, dict) and name in {str(v) for v in e.values()}]
            if not match:
                return False
            node = match[0]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            return False
    return True
