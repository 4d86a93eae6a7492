"""Apply the contract's mess-handling rules to one raw file: typed kept rows plus a quarantine.

Every value is judged against its column declaration (missing, unparseable, pattern, out_of_range,
not_in_vocabulary, case_variant, lost_leading_zero, not_utf8), keys against earlier rows (duplicate_key)
and references against the kept rows of the referenced file (orphan). Each problem is looked up in
``mess_handling.rules`` (first matching rule in declared order): quarantine rules reject the row with that
rule's code (the first one in declared order when several match), repair and accept rules keep it and are
counted. A repaired value is what every later check (and a reference's look-up) sees: a 9-digit
``article_id`` padded back to 10 digits finds its article. The whole file goes through one Polars plan;
the 31.8M-row transactions file is read once, block by block (bounded memory).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dc003.contracts.dc002 import ColumnSpec, Dc002Contract, MatchKind, MessRule
from dc003.data.ingest import REPLACEMENT, ROW, RawInput
from dc003.errors import Dc003Error

if TYPE_CHECKING:
    import polars as pl

Q = "__q"  # index into the quarantine (rule, column) list; null = kept
QUARANTINE_COLUMNS = ("file", "row", "column", "rule", "reason", "raw")


@dataclass(frozen=True)
class Reference:
    """Map a referencing column (raw text) to the dense index of the referenced file's kept rows."""

    column: str
    keys: pl.DataFrame  # two columns: the key (String) and the index (Int32)
    index_name: str


@dataclass
class Cleaned:
    name: str
    display: str
    rows_read: int
    kept: pl.DataFrame  # typed declared columns (references replaced by their index) + ROW
    quarantine: pl.DataFrame  # QUARANTINE_COLUMNS
    repairs: dict[str, int] = field(default_factory=dict)  # rule -> values repaired
    accepted: dict[str, int] = field(default_factory=dict)  # rule -> values accepted as they are
    extra_columns: tuple[str, ...] = ()  # columns of the file the contract does not declare (not read)

    @property
    def rejected(self) -> dict[str, int]:
        counts = self.quarantine.group_by("rule").len().sort("rule")
        return dict(zip(counts["rule"].to_list(), counts["len"].to_list(), strict=True))


@dataclass(frozen=True)
class _Check:
    rule_index: int
    rule: MessRule
    column: str
    kind: MatchKind
    expr: pl.Expr


def polars_dtype(name: str) -> Any:
    """The polars type of a DC-002 column type name (used by cleaning and by the Pandera schemas)."""
    import polars as pl

    return {
        "string": pl.String,
        "bool": pl.Boolean,
        "int8": pl.Int8,
        "int16": pl.Int16,
        "int32": pl.Int32,
        "int64": pl.Int64,
        "float32": pl.Float32,
        "float64": pl.Float64,
        "date": pl.Date,
    }[name]


def _lit(value: float | dt.date, spec: ColumnSpec) -> pl.Expr:
    import polars as pl

    if isinstance(value, dt.date):
        return pl.lit(value, dtype=pl.Date)
    return pl.lit(value)


class _FilePlan:
    """The expressions of one raw file: parsed values, problem conditions, repaired values."""

    def __init__(self, contract: Dc002Contract, name: str) -> None:
        self.contract = contract
        self.name = name
        self.spec = contract.raw.get(name)
        assert self.spec is not None
        self.checks: list[_Check] = []
        self.values: dict[str, pl.Expr] = {}

    def rule_for(self, column: str, kind: MatchKind) -> tuple[int, MessRule] | None:
        for i, rule in enumerate(self.contract.mess_handling.rules):
            if rule.file == self.name and column in rule.columns and kind in rule.match:
                return i, rule
        return None

    def add(self, column: str, kind: MatchKind, expr: pl.Expr) -> MessRule | None:
        found = self.rule_for(column, kind)
        if found is None:
            # lint_dc002 reports uncovered problems; the build refuses to run on lint errors
            raise Dc003Error(
                f"contracts/dc002.yaml: mess_handling.rules: no rule handles {kind} on {self.name}.{column}"
            )
        self.checks.append(_Check(found[0], found[1], column, kind, expr))
        return found[1]

    def column(self, column: str, spec: ColumnSpec) -> None:
        import polars as pl

        raw = self._padded(column, spec, pl.col(f"__raw_{column}"))
        text = raw.str.strip_chars()
        missing = raw.is_null() | (text == "")
        value: pl.Expr
        if spec.type == "string":
            value = raw
        elif spec.type == "date":
            value = text.str.to_date(spec.format or "%Y-%m-%d", strict=False)
        else:
            value = text.cast(polars_dtype(spec.type), strict=False)
        repaired = pl.when(missing).then(None).otherwise(value)
        missing_rule = self.add(column, "missing", missing)
        if self.rule_for(column, "not_utf8") is not None:
            # lint requires the rule on free text; elsewhere a pattern, vocabulary or parse rejects U+FFFD
            not_text = raw.str.contains(REPLACEMENT, literal=True).fill_null(False)
            repaired = self._problem(column, "not_utf8", not_text, repaired)
        if spec.type != "string":
            bad = ~missing & value.is_null()
            repaired = self._problem(column, "unparseable", bad, repaired)
        if spec.pattern is not None:
            bad = ~missing & ~raw.str.contains(spec.pattern)
            repaired = self._problem(column, "pattern", bad, repaired)
        if spec.min is not None or spec.max is not None:
            repaired = self._problem(column, "out_of_range", self._out_of_range(value, spec), repaired)
        if spec.vocabulary is not None:
            repaired = self._vocabulary(column, spec, raw, text, value, missing, repaired)
        if missing_rule is not None and missing_rule.repair == "fill_empty":
            repaired = pl.when(missing).then(pl.lit("")).otherwise(repaired)
        self.values[column] = repaired.cast(polars_dtype(spec.type)).alias(column)

    def _padded(self, column: str, spec: ColumnSpec, raw: pl.Expr) -> pl.Expr:
        """``raw`` with a lost leading zero restored where a zero_pad rule says so (a ``^[0-9]{N}$`` value
        of N-1 digits, as pandas' int64 ``article_id`` writes it); every later check sees the padded value."""
        import polars as pl

        width = spec.digits
        if width is None or width < 2 or self.rule_for(column, "lost_leading_zero") is None:
            return raw
        short = raw.str.contains(f"^[0-9]{{{width - 1}}}$").fill_null(False)
        rule = self.add(column, "lost_leading_zero", short)
        if rule is not None and rule.repair == "zero_pad":
            return pl.when(short).then(pl.lit("0") + raw).otherwise(raw)
        return raw

    def _out_of_range(self, value: pl.Expr, spec: ColumnSpec) -> pl.Expr:
        import polars as pl

        cond = pl.lit(False)
        if spec.min is not None:
            low = _lit(spec.min, spec)
            cond = cond | ((value <= low) if spec.min_exclusive else (value < low))
        if spec.max is not None:
            high = _lit(spec.max, spec)
            cond = cond | ((value >= high) if spec.max_exclusive else (value > high))
        return value.is_not_null() & cond

    def _problem(self, column: str, kind: MatchKind, bad: pl.Expr, repaired: pl.Expr) -> pl.Expr:
        import polars as pl

        rule = self.add(column, kind, bad)
        if rule is not None and rule.repair == "set_null":
            return pl.when(bad).then(None).otherwise(repaired)
        return repaired

    def _vocabulary(
        self,
        column: str,
        spec: ColumnSpec,
        raw: pl.Expr,
        text: pl.Expr,
        value: pl.Expr,
        missing: pl.Expr,
        repaired: pl.Expr,
    ) -> pl.Expr:
        import polars as pl

        vocab = self.contract.vocabulary(spec.vocabulary or "")
        if spec.type != "string":
            bad = value.is_not_null() & ~value.is_in(vocab)
            return self._problem(column, "not_in_vocabulary", bad, repaired)
        words = [str(v) for v in vocab]
        exact = raw.is_in(words)
        variant_rule = self.rule_for(column, "case_variant")
        folded = {w.casefold(): w for w in words}
        canonical = text.str.to_lowercase().replace_strict(
            {k: v for k, v in folded.items()}, default=None, return_dtype=pl.String
        )
        if variant_rule is not None:
            variant = ~missing & ~exact & canonical.is_not_null()
            rule = self.add(column, "case_variant", variant)
            if rule is not None and rule.repair == "canonical_spelling":
                repaired = pl.when(variant).then(canonical).otherwise(repaired)
            outside = ~missing & ~exact & canonical.is_null()
        else:
            outside = ~missing & ~exact
        return self._problem(column, "not_in_vocabulary", outside, repaired)


def clean_file(
    contract: Dc002Contract,
    source: RawInput,
    references: list[Reference] | None = None,
    *,
    batched: bool = False,
) -> Cleaned:
    """Read ``source`` once and apply the rules; see the module docstring.

    ``batched`` reads the file in blocks (bounded memory whatever its size); only for files without a
    key, since duplicate keys are a whole-file property."""
    import polars as pl

    references = references or []
    plan = _FilePlan(contract, source.name)
    spec = source.spec
    for column, col_spec in spec.columns.items():
        plan.column(column, col_spec)
    values = list(plan.values.values())
    for ref in references:
        failed_before = pl.any_horizontal(
            [c.expr for c in plan.checks if c.column == ref.column and c.rule.action == "quarantine"]
            or [pl.lit(False)]
        )
        plan.add(ref.column, "orphan", pl.col(ref.index_name).is_null() & ~failed_before)

    quarantine_pairs = sorted(
        {(c.rule_index, c.column) for c in plan.checks if c.rule.action == "quarantine"},
        key=lambda p: (p[0], list(spec.columns).index(p[1])),
    )
    pair_index = {p: i for i, p in enumerate(quarantine_pairs)}
    q_expr = pl.min_horizontal(
        [
            pl.when(c.expr).then(pl.lit(pair_index[(c.rule_index, c.column)], dtype=pl.Int32))
            for c in plan.checks
            if c.rule.action == "quarantine"
        ]
        or [pl.lit(None, dtype=pl.Int32)]
    ).alias(Q)
    dedupe: pl.Expr | None = None
    if spec.key:
        dup = _duplicate_rule(contract, source.name, spec.key[0])
        if dup is not None:
            pair = (dup[0], spec.key[0])
            if pair not in pair_index:
                pair_index[pair] = len(quarantine_pairs)
                quarantine_pairs.append(pair)
            masked = pl.when(pl.col(Q).is_null()).then(pl.struct(spec.key))
            is_dup = pl.col(Q).is_null() & ~masked.is_first_distinct()
            dedupe = (
                pl.when(is_dup).then(pl.lit(pair_index[pair], dtype=pl.Int32)).otherwise(pl.col(Q)).alias(Q)
            )
    if batched and dedupe is not None:
        raise ValueError(f"{source.name} has a key: duplicates need the whole file, it cannot be batched")

    kept_checks = [c for c in plan.checks if c.rule.action != "quarantine"]
    flags = [c.expr.fill_null(False).alias(f"__flag{i}") for i, c in enumerate(kept_checks)]
    raw_cols = [f"__raw_{c}" for c in spec.columns]
    raw_json = (
        pl.struct([pl.col(f"__raw_{c}").alias(c) for c in spec.columns]).struct.json_encode().alias("raw")
    )
    # keep only what leaves this function: referenced ids leave as their index, never as 64-char text
    renamed = {r.column: r.index_name for r in references}
    out_cols = [ROW] + [renamed.get(c, c) for c in spec.columns]

    def query(lf: pl.LazyFrame) -> pl.LazyFrame:
        lf = lf.rename({c: f"__raw_{c}" for c in spec.columns}).with_columns(values)
        for ref in references:
            # on the value as the rules left it (a repaired id finds its row; a rejected one is null)
            key = ref.keys.columns[0]
            keys = ref.keys.lazy().rename({key: ref.column})
            lf = lf.join(keys, on=ref.column, how="left", maintain_order="left")
        lf = lf.with_columns(q_expr)
        if dedupe is not None:
            lf = lf.with_columns(dedupe)
        return lf.select(*out_cols, Q, *flags, *raw_cols)

    kept_parts: list[pl.DataFrame] = []
    reject_parts: list[pl.DataFrame] = []
    flag_counts = [0] * len(kept_checks)
    rows_read = 0

    def split(df: pl.DataFrame) -> None:
        """Keep the typed rows, set the rejects (and their raw text) aside, count the repairs."""
        nonlocal rows_read
        rows_read += df.height
        kept_mask = df[Q].is_null()
        for i in range(len(kept_checks)):
            flag_counts[i] += int((df[f"__flag{i}"] & kept_mask).sum())
        kept_parts.append(df.filter(kept_mask).select(out_cols))
        # the raw text is encoded for the rejected rows only (a JSON per row costs ~1 us)
        reject_parts.append(df.filter(~kept_mask).select(ROW, Q, raw_json))

    try:
        if batched:
            for batch in source.batches():
                split(query(batch.lazy()).collect())
        if not kept_parts:  # unbatched, or a file with a header and no rows
            split(query(source.scan()).collect())
    except (pl.exceptions.PolarsError, OSError, ValueError) as exc:
        raise Dc003Error(source.parse_error(exc)) from exc
    if rows_read == 0:
        raise Dc003Error(f"{source.display}: file has no data rows")
    kept = pl.concat(kept_parts, rechunk=False)
    rejects = pl.concat(reject_parts)
    kept_parts.clear()
    reject_parts.clear()

    repairs: dict[str, int] = {}
    accepted: dict[str, int] = {}
    for i, c in enumerate(kept_checks):
        target = repairs if c.rule.action == "repair" else accepted
        target[c.rule.rule] = target.get(c.rule.rule, 0) + flag_counts[i]

    rules = contract.mess_handling.rules
    codes = pl.DataFrame(
        {
            Q: list(range(len(quarantine_pairs))),
            "column": [col for _, col in quarantine_pairs],
            "rule": [rules[ri].rule for ri, _ in quarantine_pairs],
            "reason": [rules[ri].reason for ri, _ in quarantine_pairs],
        },
        schema={Q: pl.Int32, "column": pl.String, "rule": pl.String, "reason": pl.String},
    )
    quarantine = (
        rejects.select(
            pl.lit(source.display).alias("file"),
            pl.col(ROW).alias("row"),
            Q,
            "raw",
        )
        .join(codes, on=Q, how="left")
        .select(QUARANTINE_COLUMNS)
    )
    return Cleaned(
        name=source.name,
        display=source.display,
        rows_read=rows_read,
        kept=kept,
        quarantine=quarantine,
        repairs=repairs,
        accepted=accepted,
        extra_columns=source.extra,
    )


def _duplicate_rule(contract: Dc002Contract, file: str, column: str) -> tuple[int, MessRule] | None:
    for i, rule in enumerate(contract.mess_handling.rules):
        if rule.file == file and column in rule.columns and "duplicate_key" in rule.match:
            return i, rule
    return None


def check_reject_share(contract: Dc002Contract, cleaned: Cleaned) -> None:
    """Fail when the quarantined share of a file exceeds ``mess_handling.max_reject_share``."""
    limit = contract.mess_handling.max_reject_share
    rejected = cleaned.quarantine.height
    share = rejected / cleaned.rows_read
    if share <= limit:
        return
    by_rule = sorted(cleaned.rejected.items(), key=lambda kv: -kv[1])
    first = cleaned.quarantine.row(0, named=True)
    top = ", ".join(f"{rule} {n}" for rule, n in by_rule[:4])
    raise Dc003Error(
        f"{cleaned.display}: {first['column']}: row {first['row']}: {first['rule']}: "
        f"{rejected} of {cleaned.rows_read} rows quarantined "
        f"({share:.2%} > max_reject_share {limit:.2%}; {top})"
    )
