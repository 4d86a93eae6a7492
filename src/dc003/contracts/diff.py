"""`dc003 contracts diff BASE`: what changed in the contracts since a git ref, and is it breaking.

The diff works on the YAML as data (a base version need not validate against today's schema). Lists of
named entries (features, layers, artifacts, checks) are matched by name, not position, so inserting one
entry reads as one addition. Each change is classified breaking or non-breaking with the reason, and
the contract's semver ``version`` must be bumped accordingly (breaking => major).
"""

from __future__ import annotations

import fnmatch
import subprocess
from pathlib import Path
from typing import Any, Literal

from dc003.contracts.base import Declared
from dc003.contracts.loading import parse_yaml, read_yaml
from dc003.contracts.thresholds import Threshold
from dc003.errors import Dc003Error

CONTRACT_FILES = ("contracts/dc003.yaml", "contracts/dc002.yaml")
_ID_KEYS = ("name", "path", "check", "metric", "id", "column", "rule", "table")
_MISSING = "<absent>"

Kind = Literal["breaking", "non-breaking"]


class Change(Declared):
    path: str
    old: Any
    new: Any
    kind: Kind
    reason: str


class FileDiff(Declared):
    file: str
    base_version: str | None
    new_version: str | None
    changes: list[Change]
    required_bump: Literal["none", "patch", "minor", "major"]
    actual_bump: Literal["none", "patch", "minor", "major", "downgrade", "new", "removed"]
    version_ok: bool
    verdict: str


class ContractDiff(Declared):
    base: str
    files: list[FileDiff]
    ok: bool


# ---------------------------------------------------------------- flattening


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """Leaf values by key path; named list entries are addressed as ``list[name]``."""
    out: dict[str, Any] = {}
    if isinstance(data, dict):
        if not data and prefix:
            out[prefix] = {}
        for key, value in data.items():
            out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    elif isinstance(data, list) and data and all(isinstance(e, dict) and _entry_id(e) for e in data):
        for entry in data:
            out.update(flatten(entry, f"{prefix}[{_entry_id(entry)}]"))
    elif isinstance(data, list) and data and all(isinstance(e, dict) and len(e) == 1 for e in data):
        # the document's `- layer_1: {...}` style: a list of single-key mappings
        for entry in data:
            ((key, value),) = entry.items()
            out.update(flatten(value, f"{prefix}[{key}]"))
    else:
        out[prefix] = data
    return out


def _entry_id(entry: dict[str, Any]) -> str | None:
    for key in _ID_KEYS:
        if key in entry and isinstance(entry[key], str | int):
            return str(entry[key])
    return None


# ---------------------------------------------------------------- classification

# (glob on the key path, reason): a change at a matching path breaks consumers of the contract.
_BREAKING_PATHS: list[tuple[str, str]] = [
    ("*.output_dim", "output dimension changed"),
    ("architecture.embedding_dim", "embedding dimension changed"),
    ("architecture.similarity", "the similarity used to serve changed"),
    ("global_config.embedding_dim", "embedding dimension changed"),
    ("*_tower.projection_head*.units", "output layer width changed"),
    ("*_tower.categorical_embeddings.*", "tower input interface changed"),
    ("*_tower.numerical_features*", "tower input interface changed"),
    ("*_tower.text_features*", "tower input interface changed"),
    ("user_tower.sequence_encoder.max_sequence_length", "history input length changed"),
    ("output_artifacts.*", "artifact path or format changed"),
    ("model_size_requirements.embedding_storage.*.dim", "embedding storage layout changed"),
    ("model_size_requirements.embedding_storage.*.bytes_per_value", "embedding storage layout changed"),
    # DC-002: the dataset interface the model reads
    ("*.columns*.type", "dataset column retyped"),
    ("*.columns*.dtype", "dataset column retyped"),
    ("*.key*", "dataset key changed"),
    ("*.keys*", "dataset key changed"),
    ("splits.*", "split definition changed"),
    ("point_in_time*", "point-in-time rule changed"),
    ("compatibility.*", "DC-003 compatibility changed"),
]

_NON_BREAKING_PATHS: list[tuple[str, str]] = [
    ("contract.*", "metadata"),
    ("training_monitoring.*", "monitoring list"),
    ("*.description", "description"),
    ("*.content", "description"),
    ("*.reason", "description"),
    ("*.note", "description"),
]

# Scalar guarantees whose direction matters: a larger value is tighter (True) or looser (False).
_GUARANTEE_DIRECTION: dict[str, bool] = {
    "user_scale": True,
    "item_scale": True,
    "min": True,
    "max": False,
    "max_reject_share": False,
    "tolerance": False,
}


# Sections that document the contract rather than declare it: whatever a key or text inside them looks like
# (a clarification about `user_tower.numerical_features`, a note that says ">= 0.5"), a change there breaks
# no consumer, so they are classified before any pattern or threshold is looked at.
_DOCUMENTATION_ROOTS: dict[str, str] = {
    "clarifications": "clarification",
    "design_principles": "description",
    "implementation_checklist": "checklist",
}


def classify(path: str, old: Any, new: Any) -> tuple[Kind, str]:
    if path.startswith("contract.version"):
        return "non-breaking", "version"
    root = path.split(".", 1)[0].split("[", 1)[0]
    if root in _DOCUMENTATION_ROOTS:
        return "non-breaking", _DOCUMENTATION_ROOTS[root]
    old_t, new_t = _as_threshold(old), _as_threshold(new)
    if old_t is not None or new_t is not None:
        return _classify_threshold(old_t, new_t)
    leaf = path.rsplit(".", 1)[-1]
    if leaf == "nullable" and old is True and new is False:
        return "breaking", "column made non-nullable (producers must now fill it)"
    if leaf == "nullable" and old is False and new is True:
        return "breaking", "column made nullable (consumers may now receive nulls)"
    if old == _MISSING and _is_column_path(path):
        return "non-breaking", "dataset column added"
    if new == _MISSING and _is_column_path(path):
        return "breaking", "dataset column (or one of its declarations) removed"
    for pattern, reason in _BREAKING_PATHS:
        if fnmatch.fnmatchcase(path, pattern):
            if pattern.startswith("output_artifacts") and old == _MISSING:
                return "non-breaking", "artifact added"
            return "breaking", reason
    for pattern, reason in _NON_BREAKING_PATHS:
        if fnmatch.fnmatchcase(path, pattern):
            return "non-breaking", reason
    if leaf in _GUARANTEE_DIRECTION and _is_number(old) and _is_number(new):
        larger_is_tighter = _GUARANTEE_DIRECTION[leaf]
        tighter = (new > old) == larger_is_tighter
        return ("breaking", f"{leaf} tightened") if tighter else ("non-breaking", f"{leaf} loosened")
    if leaf in {"allowed", "values", "allowed_values", "vocabulary"}:
        return "breaking", "allowed values changed"
    return "non-breaking", "training or internal setting (retrain to apply)"


def _is_column_path(path: str) -> bool:
    """A key under a dataset table's column declarations (mapping or named-list style)."""
    return ".columns." in path or ".columns[" in path


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _as_threshold(value: Any) -> Threshold | None:
    if isinstance(value, str):
        try:
            return Threshold.parse(value)
        except ValueError:
            return None
    return None


def _classify_threshold(old: Threshold | None, new: Threshold | None) -> tuple[Kind, str]:
    if old is None and new is not None:
        return "breaking", f"new threshold {new.text}"
    if new is None and old is not None:
        return "non-breaking", f"threshold {old.text} removed"
    assert old is not None and new is not None
    if old.dimension != new.dimension or old.is_upper_bound != new.is_upper_bound:
        return "breaking", f"threshold changed meaning ({old.text} -> {new.text})"
    if new.tighter_than(old):
        return "breaking", f"threshold tightened ({old.text} -> {new.text})"
    if old.tighter_than(new):
        return "non-breaking", f"threshold loosened ({old.text} -> {new.text})"
    return "non-breaking", "threshold rewritten, same bound"


# ---------------------------------------------------------------- semver


def _semver(value: Any) -> tuple[int, int, int] | None:
    try:
        major, minor, patch = (int(p) for p in str(value).split("."))
        return major, minor, patch
    except ValueError:
        return None


Bump = Literal["none", "patch", "minor", "major", "downgrade"]


def _bump(old: Any, new: Any) -> Bump:
    o, n = _semver(old), _semver(new)
    if o is None or n is None:
        return "none" if old == new else "downgrade"
    if n == o:
        return "none"
    if n < o:
        return "downgrade"
    if n[0] > o[0]:
        return "major"
    return "minor" if n[1] > o[1] else "patch"


_RANK = {"none": 0, "patch": 1, "minor": 2, "major": 3}


def diff_documents(file: str, base: Any, new: Any) -> FileDiff:
    if base is None and new is None:
        return FileDiff(
            file=file,
            base_version=None,
            new_version=None,
            changes=[],
            required_bump="none",
            actual_bump="none",
            version_ok=True,
            verdict="absent on both sides",
        )
    if base is None:
        version = _version(new)
        return FileDiff(
            file=file,
            base_version=None,
            new_version=version,
            changes=[],
            required_bump="none",
            actual_bump="new",
            version_ok=True,
            verdict="new contract",
        )
    if new is None:
        return FileDiff(
            file=file,
            base_version=_version(base),
            new_version=None,
            changes=[
                Change(path="(file)", old=file, new=_MISSING, kind="breaking", reason="contract removed")
            ],
            required_bump="major",
            actual_bump="removed",
            version_ok=False,
            verdict="contract removed",
        )
    old_flat, new_flat = flatten(base), flatten(new)
    changes: list[Change] = []
    for path in sorted(set(old_flat) | set(new_flat)):
        a, b = old_flat.get(path, _MISSING), new_flat.get(path, _MISSING)
        if a == b or path == "contract.version":
            continue
        kind, reason = classify(path, a, b)
        changes.append(Change(path=path, old=a, new=b, kind=kind, reason=reason))
    required: Literal["none", "patch", "minor", "major"] = "none"
    if any(c.kind == "breaking" for c in changes):
        required = "major"
    elif any(c.reason not in {"metadata", "description", "checklist", "clarification"} for c in changes):
        required = "minor"
    elif changes:
        required = "patch"
    actual = _bump(_version(base), _version(new))
    ok = actual != "downgrade" and _RANK.get(actual, 0) >= _RANK[required]
    if actual == "downgrade":
        verdict = "version went backwards"
    elif ok:
        verdict = "version bump matches the changes" if changes else "no changes"
    else:
        verdict = f"needs a {required} version bump (got {actual})"
    return FileDiff(
        file=file,
        base_version=_version(base),
        new_version=_version(new),
        changes=changes,
        required_bump=required,
        actual_bump=actual,
        version_ok=ok,
        verdict=verdict,
    )


def _version(doc: Any) -> str | None:
    if isinstance(doc, dict):
        meta = doc.get("contract") or doc.get("metadata") or {}
        if isinstance(meta, dict) and "version" in meta:
            return str(meta["version"])
    return None


# ---------------------------------------------------------------- git


def read_at_ref(ref: str, file: str, repo: Path) -> Any:
    """The YAML of ``file`` at git ``ref`` (None when the file did not exist there)."""
    check = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"],
        cwd=repo,
        capture_output=True,
        text=True,
    )
    if check.returncode != 0:
        raise Dc003Error(f"{ref}: not a git commit, branch or tag in {repo}")
    shown = subprocess.run(["git", "show", f"{ref}:{file}"], cwd=repo, capture_output=True, text=True)
    if shown.returncode != 0:
        return None
    return parse_yaml(shown.stdout, f"{file}@{ref}")


def repo_root(start: Path | None = None) -> Path:
    out = subprocess.run(
        ["git", "rev-parse", "--show-toplevel"], cwd=start or Path.cwd(), capture_output=True, text=True
    )
    if out.returncode != 0:
        raise Dc003Error(f"{start or Path.cwd()}: not inside a git repository (contracts diff needs git)")
    return Path(out.stdout.strip())


def diff_contracts(
    base: str, repo: Path | None = None, files: tuple[str, ...] = CONTRACT_FILES
) -> ContractDiff:
    root = repo or repo_root()
    results = []
    for file in files:
        old = read_at_ref(base, file, root)
        path = root / file
        new = read_yaml(path) if path.exists() else None
        results.append(diff_documents(file, old, new))
    return ContractDiff(base=base, files=results, ok=not any(_blocks(f) for f in results))


def _blocks(f: FileDiff) -> bool:
    """What fails the command: a breaking change without a major bump, or a version going backwards.
    A non-breaking change without any bump is reported (version_ok false) but does not fail."""
    if f.actual_bump == "downgrade":
        return True
    return f.required_bump == "major" and f.actual_bump not in ("major", "new")


# ---------------------------------------------------------------- rendering


def to_markdown(diff: ContractDiff) -> str:
    lines = [f"## Contract changes vs `{diff.base}`", ""]
    for f in diff.files:
        icon = "✅" if f.version_ok else "❌"
        lines.append(f"### {icon} `{f.file}` — {f.base_version or '∅'} → {f.new_version or '∅'}")
        lines.append("")
        breaking = sum(c.kind == "breaking" for c in f.changes)
        lines.append(
            f"{len(f.changes)} change(s), {breaking} breaking. Required bump: **{f.required_bump}**, "
            f"actual: **{f.actual_bump}** — {f.verdict}."
        )
        lines.append("")
        if f.changes:
            lines.append("| | key | old | new | why |")
            lines.append("|---|---|---|---|---|")
            for c in f.changes:
                mark = "🔴 breaking" if c.kind == "breaking" else "🟢"
                lines.append(f"| {mark} | `{c.path}` | {_cell(c.old)} | {_cell(c.new)} | {c.reason} |")
            lines.append("")
    lines.append(
        "**Verdict:** "
        + (
            "versions are consistent with the changes."
            if diff.ok
            else "a breaking change lacks a major version bump."
        )
    )
    return "\n".join(lines) + "\n"


def _cell(value: Any) -> str:
    text = "—" if value == _MISSING else f"`{value}`"
    return text.replace("|", "\\|")
