"""Evaluate the declared gates: each a pure comparison of a measured value with a contract requirement.

Nothing here measures. A value that is missing is a failure ("not measured"), never a pass; a gate that
needs hardware the run did not have (CUDA) is "not applicable", with the reason, and never "passed".
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Literal

from dc003.contracts.base import Declared
from dc003.contracts.dc003 import CountRange, Dc003Contract
from dc003.contracts.keypath import resolve_key
from dc003.contracts.thresholds import UNITS, Threshold
from dc003.gates.declaration import GatesDeclaration, GateSpec, Source
from dc003.params.common import PathsParams

Status = Literal["pass", "fail", "not_applicable"]


class GateResult(Declared):
    name: str
    group: str
    kind: str
    observed: Any
    threshold: str
    passed: bool | None  # None when not applicable
    status: Status
    source: str  # file: key the observed value came from
    contract_key: str
    reason: str


class GatesReport(Declared):
    passed: bool
    contract_version: str
    counts: dict[str, int]
    gates: list[GateResult]

    def failed(self) -> list[GateResult]:
        return [g for g in self.gates if g.status == "fail"]


def source_paths(
    decl: GatesDeclaration, contract: Dc003Contract, paths: PathsParams, root: Path
) -> dict[str, Path]:
    def where(src: Source) -> Path:
        if src.contract_artifact is not None:
            return root / contract.output_artifacts.path_of(src.contract_artifact)
        assert src.params_dir is not None and src.file is not None
        return root / getattr(paths, src.params_dir) / src.file

    return {name: where(src) for name, src in decl.sources.items()}


def evaluate_gates(
    decl: GatesDeclaration, contract: Dc003Contract, files: dict[str, Path], *, root: Path | None = None
) -> GatesReport:
    loaded: dict[str, Any] = {}
    results: dict[str, GateResult] = {}
    for gate in decl.gates:
        if gate.kind == "all_of":
            continue
        results[gate.name] = _evaluate_one(gate, contract, files, loaded, root)
    for gate in decl.gates:
        if gate.kind == "all_of":
            results[gate.name] = _all_of(gate, contract, results)
    ordered = [results[g.name] for g in decl.gates]
    counts = {s: sum(r.status == s for r in ordered) for s in ("pass", "fail", "not_applicable")}
    return GatesReport(
        passed=counts["fail"] == 0,
        contract_version=contract.contract.version,
        counts=counts,
        gates=ordered,
    )


def _display(path: Path, root: Path | None) -> str:
    if root is not None:
        try:
            return str(path.resolve().relative_to(root.resolve()))
        except ValueError:
            pass
    return str(path)


def _load(source: str, files: dict[str, Path], loaded: dict[str, Any]) -> Any:
    if source not in loaded:
        path = files[source]
        try:
            loaded[source] = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            loaded[source] = FileNotFoundError(str(path))
        except (OSError, json.JSONDecodeError) as exc:
            loaded[source] = ValueError(f"{path}: unreadable ({exc})")
    return loaded[source]


def _evaluate_one(
    gate: GateSpec, contract: Dc003Contract, files: dict[str, Path], loaded: dict[str, Any], root: Path | None
) -> GateResult:
    where = f"{_display(files[gate.source], root)}: {gate.key}"
    requirement = resolve_key(contract, gate.contract)
    threshold_text = _requirement_text(gate, requirement)

    def result(status: Status, observed: Any, reason: str) -> GateResult:
        passed = None if status == "not_applicable" else status == "pass"
        return GateResult(
            name=gate.name,
            group=gate.group,
            kind=gate.kind,
            observed=observed,
            threshold=threshold_text,
            passed=passed,
            status=status,
            source=where,
            contract_key=gate.contract,
            reason=reason,
        )

    data = _load(gate.source, files, loaded)
    if isinstance(data, Exception):
        return result("fail", None, f"not measured: {data}")
    if gate.requires == "cuda" and not _cuda(data):
        return result(
            "not_applicable", None, "needs CUDA; this run had none (recorded by the measuring stage)"
        )
    try:
        observed = resolve_key(data, gate.key)
    except KeyError:
        return result("fail", None, f"not measured: {gate.key} missing")
    if observed is None:
        return result("fail", None, "not measured (null)")

    if gate.kind == "check":
        if not isinstance(observed, bool):
            return result("fail", observed, "expected true/false")
        return result("pass" if observed else "fail", observed, "" if observed else "check failed")
    if isinstance(observed, bool) or not isinstance(observed, int | float) or math.isnan(float(observed)):
        return result("fail", observed, "not a number")
    if gate.kind == "range":
        assert isinstance(requirement, CountRange)
        ok = requirement.min <= observed <= requirement.max
        return result("pass" if ok else "fail", observed, "" if ok else "outside the declared range")
    bound = _as_threshold(gate, requirement)
    value = float(observed) * UNITS[gate.unit][1]
    if bound.dimension != UNITS[gate.unit][0]:
        return result(
            "fail", observed, f"unit mismatch: observed in {gate.unit or 'ratio'}, threshold {bound.text}"
        )
    ok = bound.passes(value)
    # the observed value in the threshold's own unit: "27.95 % does not meet >= 80 %", not "0.2795 ..."
    shown = f"{value / UNITS[bound.unit][1]:.4g} {bound.unit}".strip()
    return result("pass" if ok else "fail", observed, "" if ok else f"{shown} does not meet {bound.text}")


def _cuda(data: Any) -> bool:
    try:
        return bool(resolve_key(data, "device.cuda"))
    except KeyError:
        return False


def _as_threshold(gate: GateSpec, requirement: Any) -> Threshold:
    if isinstance(requirement, Threshold):
        return requirement
    if isinstance(requirement, str):
        return Threshold.parse(requirement)
    if isinstance(requirement, int | float) and gate.op is not None:
        return Threshold(gate.op, float(requirement), "")
    raise ValueError(f"gate {gate.name}: contract key {gate.contract} is not a threshold")


def _requirement_text(gate: GateSpec, requirement: Any) -> str:
    if isinstance(requirement, CountRange):
        return f"{requirement.min:,}..{requirement.max:,}"
    if gate.kind in ("check", "all_of"):
        return str(requirement)
    return _as_threshold(gate, requirement).text


def _all_of(gate: GateSpec, contract: Dc003Contract, results: dict[str, GateResult]) -> GateResult:
    parts = [results[n] for n in gate.all_of]
    failed = [p.name for p in parts if p.status == "fail"]
    applicable = [p for p in parts if p.status != "not_applicable"]
    status: Status = "fail" if failed else ("pass" if applicable else "not_applicable")
    shown = ", ".join(failed[:3]) + (f" and {len(failed) - 3} more" if len(failed) > 3 else "")
    reason = f"failing: {shown}" if failed else ""
    return GateResult(
        name=gate.name,
        group=gate.group,
        kind=gate.kind,
        observed=f"{sum(p.status == 'pass' for p in parts)}/{len(applicable)} applicable pass",
        threshold=str(resolve_key(contract, gate.contract)),
        passed=None if status == "not_applicable" else status == "pass",
        status=status,
        source="gates: " + ", ".join(gate.all_of),
        contract_key=gate.contract,
        reason=reason,
    )
