"""A file-system model registry: a folder of immutable versions, each with a manifest.

``registry/index.json`` lists the versions; ``registry/vN/`` holds copies of the promoted artifacts and
``manifest.json`` (their SHA-256 hashes, the metrics, the gate verdicts, the contract version and the
git commit). A version is written to a temporary folder and renamed into place, and the index is
replaced atomically last, so a refused or killed promotion leaves the earlier versions untouched.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from dc003.contracts.base import Declared
from dc003.errors import Dc003Error
from dc003.gates.check import GatesReport
from dc003.io import read_json, sha256_file, usual_mode, write_json


class RegisteredFile(Declared):
    path: str  # path in the project when promoted
    stored_as: str  # path inside the version folder
    sha256: str
    bytes: int


class VersionEntry(Declared):
    version: str
    created: str
    git_commit: str
    contract_version: str
    artifacts_digest: str
    recall_50: float | None = None


class Manifest(Declared):
    version: str
    created: str
    git_commit: str
    git_dirty: bool
    contract_id: str
    contract_version: str
    files: list[RegisteredFile]
    metrics: dict[str, Any]
    gates: dict[str, Any]


def list_versions(registry: Path) -> list[VersionEntry]:
    index = registry / "index.json"
    if not index.exists():
        return []
    try:
        return [VersionEntry.model_validate(v) for v in read_json(index)["versions"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise Dc003Error(f"{index}: versions: not a registry index ({exc})") from exc


def _git(root: Path, *args: str) -> str:
    out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
    return out.stdout.strip() if out.returncode == 0 else ""


def promote(
    report: GatesReport,
    files: list[Path],
    registry: Path,
    *,
    root: Path,
    contract_id: str,
    metrics: dict[str, Any],
) -> tuple[VersionEntry, bool]:
    """Register ``files`` as a new version when every gate passes. Returns (entry, created)."""
    if not report.passed:
        failing = "; ".join(f"{g.name}: {g.reason or 'failed'}" for g in report.failed())
        raise Dc003Error(
            f"promotion refused: {len(report.failed())} gate(s) fail ({failing}); registry unchanged"
        )
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise Dc003Error(f"promotion refused: artifacts missing: {', '.join(missing)}")
    hashed = [(f, sha256_file(f)) for f in files]
    digest = _digest(hashed, root)
    versions = list_versions(registry)
    if versions and versions[-1].artifacts_digest == digest:
        return versions[-1], False  # the same artifacts are already the latest version
    number = 1 + max((int(v.version.lstrip("v")) for v in versions), default=0)
    version = f"v{number}"
    created = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
    commit = _git(root, "rev-parse", "HEAD") or "unknown"
    dirty = bool(_git(root, "status", "--porcelain", "--untracked-files=no"))
    registry.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{version}.", dir=registry))
    usual_mode(staging, directory=True)
    try:
        stored: list[RegisteredFile] = []
        for f, sha in hashed:
            rel = _rel(f, root)
            dest = staging / "files" / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, dest)
            stored.append(
                RegisteredFile(path=rel, stored_as=f"files/{rel}", sha256=sha, bytes=f.stat().st_size)
            )
        manifest = Manifest(
            version=version,
            created=created,
            git_commit=commit,
            git_dirty=dirty,
            contract_id=contract_id,
            contract_version=report.contract_version,
            files=stored,
            metrics=metrics,
            gates={
                "passed": report.passed,
                "counts": report.counts,
                "results": {
                    g.name: {"observed": g.observed, "threshold": g.threshold, "status": g.status}
                    for g in report.gates
                },
            },
        )
        write_json(staging / "manifest.json", manifest.model_dump(mode="json"))
        os.replace(staging, registry / version)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    recall = metrics.get("recall_50")
    entry = VersionEntry(
        version=version,
        created=created,
        git_commit=commit,
        contract_version=report.contract_version,
        artifacts_digest=digest,
        recall_50=float(recall) if isinstance(recall, int | float) else None,
    )
    write_json(registry / "index.json", {"versions": [v.model_dump() for v in [*versions, entry]]})
    return entry, True


def _rel(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return path.name


def _digest(hashed: list[tuple[Path, str]], root: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    for f, sha in sorted(hashed, key=lambda p: _rel(p[0], root)):
        h.update(f"{_rel(f, root)}\0{sha}\n".encode())
    return h.hexdigest()


class PromotionDecision(Declared):
    """What a promotion attempt decided (the promote stage records it; `dc003 registry promote` prints it)."""

    promoted: bool
    version: str | None  # the version now holding these artifacts (None when refused)
    created: bool  # False: refused, or the same artifacts were already the latest version
    contract_version: str
    failing_gates: list[str]
    message: str


def promote_project(
    root: Path,
    registry: Path,
    *,
    extra_files: tuple[Path, ...] = (),
    contract_path: str = "contracts/dc003.yaml",
    gates_path: str = "gates/promotion.yaml",
    params_path: str = "params.yaml",
) -> PromotionDecision:
    """Compare the gates on the project's measured values and register the contract's artifacts.

    Gates failing is a decision (``promoted=False``), not an error; missing artifacts or a corrupt
    registry raise :class:`Dc003Error`. Either way nothing under ``registry`` changes unless promoted.
    """
    from dc003.contracts import load_dc003
    from dc003.gates import run_gates

    contract = load_dc003(root / contract_path)
    report = run_gates(root / gates_path, root / contract_path, root / params_path, root=root)
    failing = [g.name for g in report.failed()]
    if failing:
        reasons = "; ".join(f"{g.name}: {g.reason or 'failed'}" for g in report.failed())
        return PromotionDecision(
            promoted=False,
            version=None,
            created=False,
            contract_version=report.contract_version,
            failing_gates=failing,
            message=f"promotion refused: {len(failing)} gate(s) fail ({reasons}); registry unchanged",
        )
    files = [root / art.path for _, _, art in contract.output_artifacts.all()] + list(extra_files)
    evaluation_file = root / contract.output_artifacts.path_of("evaluation_results.json")
    evaluation = read_json(evaluation_file) if evaluation_file.is_file() else {}
    metrics = dict((evaluation.get("models") or {}).get("two_tower") or {})
    entry, created = promote(
        report, files, registry, root=root, contract_id=contract.contract.id, metrics=metrics
    )
    state = "promoted" if created else "already the latest version (same artifacts)"
    return PromotionDecision(
        promoted=True,
        version=entry.version,
        created=created,
        contract_version=report.contract_version,
        failing_gates=[],
        message=f"{entry.version} {state} -> {registry / entry.version}",
    )
