"""The model registry is GTO: versions and stages are git tags on the artifact declared in ``dvc.yaml``.

``dvc.yaml`` declares the model under its top-level ``artifacts:`` (``two-tower``: the export stage's
folder, ONNX towers + FAISS index + mappings + config). A promotion, only when every gate passes:

1. checks that the files in that folder are exactly what ``dvc.lock`` records for it (same DVC md5),
   so that the tag resolves to these files through the DVC cache / remote and not to older ones;
2. picks the commit to tag. The promote stage runs inside ``dvc repro``, before the user commits the
   new ``dvc.lock``, so HEAD usually describes an *older* model. Tagging HEAD would make
   ``dvc artifacts get . two-tower --rev vX`` silently download that older model. Instead the tag points
   at a **snapshot commit**: HEAD's tree plus the working copy of every tracked file (``dvc.lock``
   above all), written with git plumbing into a temporary index (``git add -u``,
   ``git write-tree``, ``git commit-tree -p HEAD``; ``dvc.yaml``, ``dvc.lock`` and ``params.yaml`` are
   added even when untracked, as on a first run). No branch moves and the user's index is
   untouched; the annotated tag keeps the commit reachable. When the working copy has no tracked
   change (``dvc.lock`` already committed) the snapshot is HEAD itself and HEAD is tagged;
3. registers a version (``gto register`` -> tag ``two-tower@v1.3.0``) and assigns the stage
   (``gto assign --stage prod`` -> tag ``two-tower#prod#N``). The tag message carries the
   artifacts' DVC md5, the contract id and version, the source commit, the gate counts and the
   model's metrics, so ``gto show`` / ``gto history`` / ``git show TAG`` say what was promoted.

Versions are semver: the first is ``v1.0.0``; each promotion of new artifacts bumps the minor
version, or the major one when the contract's major version differs from the latest version's.
Promoting artifacts whose DVC md5 an active version already has creates nothing (idempotent).
A refused promotion (a failing gate) touches neither git nor the files: no commit, no tag.

The files themselves are DVC's: ``dvc push`` (after ``dvc repro``) sends them to the remote and
``git push --tags`` sends the versions, after which ``dvc artifacts get URL two-tower --stage prod``
on any machine downloads exactly the promoted folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from dc003.contracts.base import Declared
from dc003.errors import Dc003Error
from dc003.gates.check import GatesReport

MODEL_ARTIFACT = "two-tower"  # the name under dvc.yaml `artifacts:` (and in every GTO tag)
PROD_STAGE = "prod"
FIRST_VERSION = "v1.0.0"
_FALLBACK_IDENTITY = ("dc003 promote", "dc003-promote@localhost")
SNAPSHOT_ALWAYS = ("dvc.yaml", "dvc.lock", "params.yaml")  # in the snapshot even when untracked


class PromotionDecision(Declared):
    """What a promotion attempt decided (the promote stage records it; `dc003 registry promote` prints it)."""

    promoted: bool
    version: str | None  # the GTO version now holding these artifacts (None when refused)
    created: bool  # False: refused, or an active version already holds the same artifacts
    contract_version: str
    failing_gates: list[str]
    message: str
    artifact: str = MODEL_ARTIFACT
    tag: str | None = None  # the registration tag, e.g. two-tower@v1.0.0
    commit: str | None = None  # the commit the tag points at
    artifacts_md5: str | None = None  # DVC md5 of the artifact folder (what dvc.lock records)


# ---------------------------------------------------------------------------------------------- git


def _git(root: Path, *args: str, env: dict[str, str] | None = None, check: bool = True) -> str:
    out = subprocess.run(
        ["git", *args], cwd=root, capture_output=True, text=True, env={**os.environ, **(env or {})}
    )
    if check and out.returncode != 0:
        detail = (out.stderr or out.stdout).strip().splitlines()
        raise Dc003Error(f"git {' '.join(args[:2])} failed: {detail[-1] if detail else out.returncode}")
    return out.stdout.strip() if out.returncode == 0 else ""


def require_git_root(root: Path) -> str:
    """The HEAD commit of the git repository whose top level is ``root``; one clear error otherwise."""
    top = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=root, capture_output=True, text=True)
    if top.returncode != 0:
        raise Dc003Error(
            f"{root}: not a git repository: the model registry is GTO (versions are git tags); "
            "run `git init` and commit the project first"
        )
    if Path(top.stdout.strip()).resolve() != root.resolve():
        raise Dc003Error(f"{root}: not the top of its git repository ({top.stdout.strip()}): run from there")
    head = subprocess.run(
        ["git", "rev-parse", "--verify", "-q", "HEAD"], cwd=root, capture_output=True, text=True
    )
    if head.returncode != 0:
        raise Dc003Error(
            f"{root}: the git repository has no commit yet: a GTO version tags a commit; "
            "commit the project first"
        )
    return head.stdout.strip()


def _identity(root: Path) -> tuple[str, str]:
    name = _git(root, "config", "user.name", check=False)
    email = _git(root, "config", "user.email", check=False)
    return (name or _FALLBACK_IDENTITY[0], email or _FALLBACK_IDENTITY[1])


def snapshot_commit(root: Path, head: str, message: str) -> tuple[str, bool]:
    """The commit to tag: HEAD when no tracked file differs from it, else HEAD + the working copy.

    Returns (commit, is_snapshot). Written through a temporary index: the user's index, branch and
    working tree are left as they were.
    """
    with tempfile.TemporaryDirectory(prefix="dc003-promote-") as tmp:
        env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        _git(root, "read-tree", head, env=env)
        _git(root, "add", "-u", "--", ".", env=env)
        # the files a tag must resolve through, even on a first run where they were never committed
        present = [f for f in SNAPSHOT_ALWAYS if (root / f).is_file()]
        if present:
            _git(root, "add", "--", *present, env=env)
        tree = _git(root, "write-tree", env=env)
    if tree == _git(root, "rev-parse", f"{head}^{{tree}}"):
        return head, False
    name, email = _identity(root)
    env = {
        "GIT_AUTHOR_NAME": os.environ.get("GIT_AUTHOR_NAME", name),
        "GIT_AUTHOR_EMAIL": os.environ.get("GIT_AUTHOR_EMAIL", email),
        "GIT_COMMITTER_NAME": os.environ.get("GIT_COMMITTER_NAME", name),
        "GIT_COMMITTER_EMAIL": os.environ.get("GIT_COMMITTER_EMAIL", email),
    }
    return _git(root, "commit-tree", tree, "-p", head, "-m", message, env=env), True


# ---------------------------------------------------------------------------------------------- DVC


def declared_artifact(root: Path, name: str = MODEL_ARTIFACT) -> dict[str, Any]:
    """The ``name`` entry of ``dvc.yaml``'s top-level ``artifacts:`` (path, type, desc, labels).

    ``path`` may be a ``${section.key}`` interpolation from ``params.yaml``, which DVC resolves in
    ``artifacts:`` too (``dvc artifacts get`` at the tag); it is resolved here the same way.
    """
    dvc_yaml = root / "dvc.yaml"
    if not dvc_yaml.is_file():
        raise Dc003Error(f"{dvc_yaml}: missing: the model artifact is declared there (artifacts: {name})")
    data = yaml.safe_load(dvc_yaml.read_text(encoding="utf-8")) or {}
    entry = (data.get("artifacts") or {}).get(name)
    if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
        raise Dc003Error(f"{dvc_yaml}: artifacts.{name}.path: not declared")
    return {**entry, "path": _interpolate(root, entry["path"], f"{dvc_yaml}: artifacts.{name}.path")}


def _interpolate(root: Path, value: str, where: str) -> str:
    params_file = root / "params.yaml"
    params = yaml.safe_load(params_file.read_text(encoding="utf-8")) if params_file.is_file() else {}

    def lookup(match: re.Match[str]) -> str:
        node: Any = params
        for key in match.group(1).split("."):
            if not isinstance(node, dict) or key not in node:
                raise Dc003Error(f"{where}: {match.group(0)}: not in {params_file}")
            node = node[key]
        return str(node)

    return re.sub(r"\$\{\s*([A-Za-z0-9_.-]+)\s*\}", lookup, value)


def locked_md5(root: Path, path: str) -> str:
    """The md5 ``dvc.lock`` records for the output ``path`` (a ``.dir`` hash for a folder)."""
    lock = root / "dvc.lock"
    data = yaml.safe_load(lock.read_text(encoding="utf-8")) if lock.is_file() else None
    for stage in ((data or {}).get("stages") or {}).values():
        for out in stage.get("outs") or []:
            if Path(out.get("path", "")) == Path(path) and out.get("md5"):
                return str(out["md5"])
    raise Dc003Error(f"{lock}: records no output {path}: run `dvc repro` (the export stage) first")


def _md5_file(path: Path) -> str:
    digest = hashlib.md5()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def dvc_md5(path: Path) -> str:
    """DVC 3's md5 of a file, or of a folder (``<md5 of its .dir listing>.dir``), as ``dvc.lock`` has it."""
    if path.is_file():
        return _md5_file(path)
    if not path.is_dir():
        raise Dc003Error(f"{path}: missing: run `dvc repro` (or `dvc pull`) first")
    entries = sorted(
        (
            {"md5": _md5_file(f), "relpath": f.relative_to(path).as_posix()}
            for f in path.rglob("*")
            if f.is_file()
        ),
        key=lambda e: e["relpath"],
    )
    return hashlib.md5(json.dumps(entries, sort_keys=True).encode("utf-8")).hexdigest() + ".dir"


# ---------------------------------------------------------------------------------------------- GTO


@contextmanager
def gto_errors(what: str) -> Iterator[None]:
    from gto.exceptions import GTOException

    try:
        yield
    except GTOException as exc:
        raise Dc003Error(f"gto {what}: {exc}") from exc


def _tag_message(root: Path, tag: str) -> str:
    return _git(root, "for-each-ref", f"refs/tags/{tag}", "--format=%(contents)", check=False)


def parse_message(message: str) -> dict[str, str]:
    """The ``key: value`` lines of a registration tag message (artifacts_md5, contract, ...)."""
    fields: dict[str, str] = {}
    for line in message.splitlines():
        m = re.match(r"^([a-z_0-9]+): (.*)$", line.strip())
        if m:
            fields[m.group(1)] = m.group(2)
    return fields


def versions(root: Path, name: str = MODEL_ARTIFACT) -> list[dict[str, Any]]:
    """The active registered versions of ``name``, newest first, each with its tag message's fields."""
    import gto.api

    require_git_root(root)
    with gto_errors("show"):
        if name not in gto.api.show(str(root)):
            return []
        found = gto.api.show(str(root), name, registered_only=True)
    out = []
    for v in found:
        tag = f"{name}@{v['version']}"
        out.append(
            {
                **parse_message(_tag_message(root, tag)),  # first: the fields below always win
                "version": v["version"],
                "tag": tag,
                "commit": v["commit_hexsha"],
                "created_at": str(v["created_at"]),
                "stages": sorted({s["stage"] for s in v.get("stages", [])}),
            }
        )
    return out


def _next_version(existing: list[dict[str, Any]], contract_version: str) -> str:
    from gto.versions import SemVer

    if not existing:
        return FIRST_VERSION
    latest = max(existing, key=lambda v: SemVer(v["version"]))
    latest_contract = latest.get("contract", "").split(" ")[-1]
    major_changed = latest_contract.split(".")[0] != contract_version.split(".")[0]
    bumped = SemVer(latest["version"]).bump(bump_major=major_changed, bump_minor=not major_changed)
    return str(bumped.version)


def _message(
    *,
    name: str,
    version: str,
    path: str,
    md5: str,
    contract_id: str,
    report: GatesReport,
    head: str,
    snapshot: bool,
    metrics: dict[str, Any],
) -> str:
    counts = ", ".join(f"{v} {k}" for k, v in report.counts.items())
    shown = {k: v for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    lines = [
        f"dc003: promote {name} {version}: every gate passes",
        "",
        f"artifact_path: {path}",
        f"artifacts_md5: {md5}",
        f"contract: {contract_id} {report.contract_version}",
        f"source_commit: {head}{' + uncommitted tracked changes (snapshot commit)' if snapshot else ''}",
        f"gates: {counts}",
        *(f"metric_{k}: {v:.6g}" for k, v in sorted(shown.items())),
    ]
    return "\n".join(lines) + "\n"


def register_model(
    root: Path,
    report: GatesReport,
    *,
    contract_id: str,
    metrics: dict[str, Any],
    name: str = MODEL_ARTIFACT,
    stage: str = PROD_STAGE,
) -> PromotionDecision:
    """Register the ``dvc.yaml`` artifact ``name`` with GTO and assign ``stage``, if every gate passes.

    A failing gate returns a refusal and touches nothing (no commit, no tag). Anything that keeps a
    passing model from being registered faithfully (no git, no commit, files that differ from
    ``dvc.lock``) raises :class:`Dc003Error` with one clear line.
    """
    import gto.api

    failing = [g.name for g in report.failed()]
    if failing or not report.passed:
        reasons = (
            "; ".join(f"{g.name}: {g.reason or 'failed'}" for g in report.failed()) or "report not passed"
        )
        return PromotionDecision(
            promoted=False,
            version=None,
            created=False,
            contract_version=report.contract_version,
            failing_gates=failing,
            message=f"promotion refused: {len(failing)} gate(s) fail ({reasons}); no GTO tag created",
            artifact=name,
        )
    head = require_git_root(root)
    path = declared_artifact(root, name)["path"]
    recorded = locked_md5(root, path)
    actual = dvc_md5(root / path)
    if actual != recorded:
        raise Dc003Error(
            f"{root / path}: md5 {actual} but dvc.lock records {recorded}: the tag would not resolve to "
            "these files; run `dvc repro` (or `dvc commit`) first"
        )
    existing = versions(root, name)
    same = [v for v in existing if v.get("artifacts_md5") == actual]
    if same:
        version = same[0]
        if not version["stages"]:  # registered but the assignment never happened (interrupted): finish it
            author, email = _identity(root)
            with gto_errors("assign"):
                gto.api.assign(
                    str(root), name, stage, version=version["version"], author=author, author_email=email
                )
        return PromotionDecision(
            promoted=True,
            version=version["version"],
            created=False,
            contract_version=report.contract_version,
            failing_gates=[],
            message=f"{version['tag']} already holds these artifacts (md5 {actual}); no new version",
            artifact=name,
            tag=version["tag"],
            commit=version["commit"],
            artifacts_md5=actual,
        )
    version_name = _next_version(existing, report.contract_version)
    commit, snapshot = snapshot_commit(root, head, f"dc003: snapshot promoted as {name}@{version_name}")
    if actual not in _git(root, "show", f"{commit}:dvc.lock", check=False):
        raise Dc003Error(
            f"commit {commit[:10]}: its dvc.lock does not record {path} md5 {actual}; nothing tagged"
        )
    message = _message(
        name=name,
        version=version_name,
        path=path,
        md5=actual,
        contract_id=contract_id,
        report=report,
        head=head,
        snapshot=snapshot,
        metrics=metrics,
    )
    author, email = _identity(root)
    with gto_errors("register"):
        gto.api.register(
            str(root), name, commit, version=version_name, message=message, author=author, author_email=email
        )
    with gto_errors("assign"):
        gto.api.assign(
            str(root),
            name,
            stage,
            version=version_name,
            message=f"dc003: {name} {version_name} -> {stage}",
            author=author,
            author_email=email,
        )
    tag = f"{name}@{version_name}"
    where = " (snapshot of HEAD + the working copy's tracked changes)" if snapshot else " (HEAD)"
    return PromotionDecision(
        promoted=True,
        version=version_name,
        created=True,
        contract_version=report.contract_version,
        failing_gates=[],
        message=f"{tag} registered on {commit[:10]}{where}, stage {stage}; "
        "`dvc push` and `git push --tags` publish it",
        artifact=name,
        tag=tag,
        commit=commit,
        artifacts_md5=actual,
    )


def promote_project(
    root: Path,
    *,
    contract_path: str = "contracts/dc003.yaml",
    gates_path: str = "gates/promotion.yaml",
    params_path: str = "params.yaml",
    stage: str = PROD_STAGE,
    name: str = MODEL_ARTIFACT,
    files: dict[str, Path] | None = None,
) -> PromotionDecision:
    """Compare the gates on the project's measured values and register the model artifact with GTO.

    ``name``: the ``dvc.yaml`` artifact; ``files``: the measured file of each gates source, where they
    are not the project's (the incremental update's folder, :mod:`dc003.update`).
    Gates failing is a decision (``promoted=False``, no tag), not an error; see :func:`register_model`.
    """
    from dc003.contracts import load_dc003
    from dc003.gates import run_gates
    from dc003.gates.check import evaluate_gates
    from dc003.gates.declaration import load_declaration
    from dc003.io import read_json

    contract = load_dc003(root / contract_path)
    if files is None:
        report = run_gates(root / gates_path, root / contract_path, root / params_path, root=root)
        evaluation_file = root / contract.output_artifacts.path_of("evaluation_results.json")
    else:
        report = evaluate_gates(load_declaration(root / gates_path), contract, files, root=root)
        evaluation_file = next((p for p in files.values() if p.name == "evaluation_results.json"), root)
    evaluation = read_json(evaluation_file) if evaluation_file.is_file() else {}
    metrics = dict((evaluation.get("models") or {}).get("two_tower") or {})
    return register_model(
        root, report, contract_id=contract.contract.id, metrics=metrics, name=name, stage=stage
    )
