"""Validate a DC-002 dataset directory with Pandera and Great Expectations, both compiled from the contract.

Every frame is checked by both engines on all of its rows. A rule fails when either engine rejects it
(and the summary says when they disagree, which is itself an error). Error-severity failures fail the
validation; warnings (vocabulary overflow handled by the declared policy, drift-type distributions) are
reported and kept in the summary.

A stored column whose type is not the declared one (or that is missing) is reported once, by its type rule,
at its source file. The rules that read it, directly or through a view or a recomputation in any frame,
cannot be computed: they are not run, and are counted under that type error (``not_run``) rather than
reported as failures of their own.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Collection
from pathlib import Path
from typing import Any

from dc003.contracts.dc002 import Dc002Contract
from dc003.contracts.dc002_lint import require_clean
from dc003.contracts.dc003 import Dc003Contract
from dc003.contracts.loading import display_path
from dc003.data import layout
from dc003.data.validation.frames import DatasetFrames
from dc003.data.validation.pandera_engine import EngineResult, run_pandera
from dc003.data.validation.rules import DatasetFacts, Rule, compile_rules
from dc003.errors import Dc003Error

ENGINES = ("pandera", "great_expectations")


def _needed_files(contract: Dc002Contract) -> list[str]:
    files = [layout.SPLITS_JSON, layout.VOCAB_JSON, layout.MANIFEST_JSON]
    for _, table in contract.tables.all():
        if table.optional:
            continue
        files += [table.file_for(s) for s in layout.SPLITS] if table.per_split else [table.file]
    return files


def _columns_of(rule: Rule) -> list[str]:
    cols = [c for c in (rule.column, rule.params.get("other")) if c]
    cols += list(rule.params.get("columns", []))
    return [str(c) for c in cols]


def validate_dataset(
    dataset_dir: str | Path,
    contract: Dc002Contract,
    dc003: Dc003Contract,
    *,
    docs_dir: Path | None = None,
    only: Collection[str] | None = None,
) -> dict[str, Any]:
    """Run every compiled rule on every DC-002 file of ``dataset_dir`` (or only on the files named in
    ``only``, e.g. ``{"interactions.parquet"}``); returns the JSON summary."""
    started = time.perf_counter()
    require_clean(contract, dc003)
    root = Path(dataset_dir)
    if not root.is_dir():
        raise Dc003Error(f"{display_path(root)}: dataset directory not found")
    missing = [f for f in _needed_files(contract) if not (root / f).is_file()]
    if missing:
        raise Dc003Error(f"{display_path(root / missing[0])}: file not found (a DC-002 dataset file)")
    frames = DatasetFrames(root, contract)
    has_oracle = (root / contract.tables.oracle.file).is_file()
    facts = DatasetFacts(
        rows={f: frames.rows(f) for f in _needed_files(contract) if f.endswith(".parquet")},
        has_oracle=has_oracle,
    )
    compiled = compile_rules(contract, dc003, facts)
    breaches = frames.type_breaches(compiled)
    rules = compiled if only is None else [r for r in compiled if r.file in only]
    blocked = _blocked(frames, rules, breaches)
    if blocked:  # the type rule of a breach outside ``only`` still reports it
        sources = set(blocked.values())
        chosen = {r.id for r in rules}
        rules += [r for r in compiled if _source(r, breaches) in sources and r.id not in chosen]
    by_frame: dict[str, list[Rule]] = defaultdict(list)
    for r in rules:
        if r.id not in blocked:
            by_frame[r.frame].append(r)

    import polars as pl

    from dc003.data.validation.gx_engine import GxRun

    gx_run = GxRun(docs_dir)
    results: dict[str, dict[str, EngineResult]] = {e: {} for e in ENGINES}
    seconds = {"frames": 0.0, "pandera": 0.0, "great_expectations": 0.0}
    tables: dict[str, dict[str, Any]] = {}
    skipped = 0
    for frame, frame_rules in by_frame.items():
        t0 = time.perf_counter()
        try:
            df = frames.build(frame, frame_rules)
        except (pl.exceptions.PolarsError, KeyError) as exc:  # a view needs a column the file lacks
            why = f"cannot build the {frame} view: {str(exc).splitlines()[0]}"
            for r in frame_rules:
                for e in ENGINES:
                    results[e][r.id] = EngineResult(failed=True, error=why)
            tables[frame] = {"rows": 0, "rules": len(frame_rules)}
            continue
        seconds["frames"] += time.perf_counter() - t0
        present = set(df.columns)
        # a missing column fails its type rule (both engines); the other rules on it cannot run
        runnable = [r for r in frame_rules if r.kind == "dtype" or set(_columns_of(r)) <= present]
        skipped += len(frame_rules) - len(runnable)
        pa_res, pa_s = run_pandera(df, frame, runnable)
        gx_res, gx_s = gx_run.validate(df, frame, runnable)
        results["pandera"].update(pa_res)
        results["great_expectations"].update(gx_res)
        seconds["pandera"] += pa_s
        seconds["great_expectations"] += gx_s
        tables[frame] = {"rows": df.height, "rules": len(frame_rules)}
        del df
    t0 = time.perf_counter()
    gx_run.build_docs()
    seconds["data_docs"] = time.perf_counter() - t0
    summary = _summary(root, contract, frames, rules, results, tables, breaches, blocked)
    absent = sum(breaches[source] == "missing" for source in blocked.values())
    summary["counts"]["skipped_missing_column"] = skipped + absent
    summary["counts"]["not_run_type_error"] = len(blocked) - absent
    summary["timing_seconds"] = {k: round(v, 3) for k, v in seconds.items()}
    summary["timing_seconds"]["total"] = round(time.perf_counter() - started, 3)
    if docs_dir is not None:
        summary["data_docs"] = "data_docs/index.html"
    return summary


def _source(rule: Rule, breaches: dict[tuple[str, str], str]) -> tuple[str, str] | None:
    """The breach ``rule`` reports: a type rule on a stored column whose type is wrong."""
    if rule.kind != "dtype" or rule.column is None or ":" in rule.frame:
        return None
    pair = (rule.frame, rule.column)
    return pair if pair in breaches else None


def _blocked(
    frames: DatasetFrames, rules: list[Rule], breaches: dict[tuple[str, str], str]
) -> dict[str, tuple[str, str]]:
    """rule id -> the breached (file, column) it reads, for every rule that cannot be computed."""
    if not breaches:
        return {}
    out: dict[str, tuple[str, str]] = {}
    for r in rules:
        if _source(r, breaches) is not None:
            continue
        hit = sorted(pair for pair in frames.inputs(r) if pair in breaches)
        if hit:
            out[r.id] = hit[0]
    return out


def _entry(root: Path, rule: Rule, per_engine: dict[str, EngineResult]) -> dict[str, Any]:
    pa, ge = per_engine["pandera"], per_engine["great_expectations"]
    counts = [r.count for r in (pa, ge) if r.count is not None]
    examples = pa.examples or ge.examples
    return {
        "severity": rule.severity,
        "file": display_path(root / rule.file),
        "frame": rule.frame,
        "column": rule.column,
        "rule": rule.name,
        "kind": rule.kind,
        "expectation": rule.describe(),
        "source": rule.source,
        "count": max(counts) if counts else None,
        "observed": ge.observed if ge.observed is not None else pa.observed,
        "examples": examples,
        "engines": {
            name: {"failed": r.failed, "count": r.count, "error": r.error} for name, r in per_engine.items()
        },
        "engines_agree": pa.failed == ge.failed,
    }


def _summary(
    root: Path,
    contract: Dc002Contract,
    frames: DatasetFrames,
    rules: list[Rule],
    results: dict[str, dict[str, EngineResult]],
    tables: dict[str, dict[str, Any]],
    breaches: dict[tuple[str, str], str],
    blocked: dict[str, tuple[str, str]],
) -> dict[str, Any]:
    failures = []
    by_source: dict[tuple[str, str], list[Rule]] = defaultdict(list)
    for rule in rules:
        if rule.id in blocked:
            by_source[blocked[rule.id]].append(rule)
    for rule in rules:
        if rule.id not in results["pandera"]:
            continue  # not runnable: its column is missing or mistyped, which its type rule reports
        per_engine = {e: results[e].get(rule.id, EngineResult(failed=True, error="not run")) for e in ENGINES}
        source = _source(rule, breaches)
        if any(r.failed for r in per_engine.values()) or source is not None:
            entry = _entry(root, rule, per_engine)
            if not entry["engines_agree"]:
                entry["severity"] = "error"  # the two engines must enforce the same contract
            if source is not None:
                entry["severity"] = "error"
                entry["observed"] = breaches[source]
                entry["not_run"] = len(by_source.get(source, []))
                entry["type_breach"] = True
            failures.append(entry)
            tables[rule.frame]["failed"] = tables[rule.frame].get("failed", 0) + 1
    errors = [f for f in failures if f["severity"] == "error"]
    manifest = frames.manifest
    raw = manifest.get("raw", {})
    return {
        "passed": not errors,
        "dataset_dir": display_path(root),
        "contract": {"id": contract.contract.id, "version": contract.contract.version},
        "dataset_contract_version": manifest.get("contract", {}).get("version"),
        "counts": {
            "rules": len(rules),
            "frames": len(tables),
            "errors": len(errors),
            "warnings": len(failures) - len(errors),
            "engine_disagreements": sum(not f["engines_agree"] for f in failures),
        },
        "failures": failures,
        "not_run": [
            {
                "file": display_path(root / file),
                "column": column,
                "found": breaches[(file, column)],
                "rules": len(deps),
                "frames": sorted({r.frame for r in deps}),
            }
            for (file, column), deps in sorted(by_source.items())
        ],
        "vocabulary_overflow": _overflow(frames.vocab_json),
        "repaired": {name: v.get("repaired_by_rule", {}) for name, v in raw.items()},
        "rejected": {name: v.get("rejected_by_rule", {}) for name, v in raw.items()},
        "accepted": {name: v.get("accepted_by_rule", {}) for name, v in raw.items()},
        "reject_share": {name: v.get("reject_share") for name, v in raw.items()},
        "frames": tables,
    }


def _overflow(vocab: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for feature, v in vocab.items():
        if not isinstance(v, dict) or not v.get("overflow_values"):
            continue
        out.append(
            {
                "feature": feature,
                "column": v.get("column"),
                "policy": v.get("policy"),
                "vocab_size": v.get("vocab_size"),
                "distinct_values": v.get("distinct_values"),
                "known_values": len(v.get("values", [])) - 1,
                "overflow_values": v.get("overflow_values"),
                "overflow_examples": v.get("overflow_examples", [])[:5],
                "unknown_share": v.get("unknown_share"),
                "max_unknown_share": v.get("max_unknown_share"),
            }
        )
    return out


def failure_lines(summary: dict[str, Any]) -> list[str]:
    """One line per failure: ``severity: file: column: rows ...: rule: expectation (source)``."""
    lines = []
    for f in summary["failures"]:
        if f["rule"] == "vocab_overflow":
            continue  # reported below, with the policy and the unknown share
        where = f"{f['file']}" + (f" ({f['frame'].split(':', 1)[1]} view)" if ":" in f["frame"] else "")
        rows = ""
        if f["examples"]:
            shown = ", ".join(str(e["row"]) for e in f["examples"])
            rows = f"rows {shown}: " if (f["count"] or 0) > 1 else f"row {shown}: "
        count = f" ({f['count']} rows)" if f["count"] else ""
        observed = f", observed {f['observed']}" if f["observed"] is not None and not f["examples"] else ""
        # a type breach is stated by ``observed``; the engines' own words for it add nothing
        errors = [f"{k}: {v['error']}" for k, v in f["engines"].items() if v.get("error")]
        if f.get("type_breach"):
            errors = []
        extra = f" [{'; '.join(errors)}]" if errors else ""
        agree = "" if f["engines_agree"] else " [engines disagree]"
        after = f"; {f['not_run']} rule(s) reading it not run" if f.get("not_run") else ""
        lines.append(
            f"{f['severity']}: {where}: {f['column'] or '-'}: {rows}{f['rule']}: {f['expectation']}{count}"
            f"{observed} ({f['source']}){extra}{agree}{after}"
        )
    for o in summary.get("vocabulary_overflow", []):
        lines.append(
            f"overflow: {o['column']}: {o['distinct_values']} values for DC-003 {o['feature']} "
            f"(vocab_size {o['vocab_size']}, {o['known_values']} known + unknown): "
            f"{o['overflow_values']} values -> index 0 by policy {o['policy']}; "
            f"unknown share {o['unknown_share']} (max {o['max_unknown_share']})"
        )
    return lines
