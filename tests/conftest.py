"""Shared test fixtures: the repo root, and writing modified copies of the shipped declarations."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

import dc003  # noqa: F401  (sets the offline/no-telemetry environment before anything else loads)

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
HM_SAMPLE = SHARED / "data" / "hm-sample"
# the tests that read the real H&M sample skip where ../shared does not hold it (a clone elsewhere)
needs_hm_sample = pytest.mark.skipif(
    not (HM_SAMPLE / "customers.csv").is_file(), reason="H&M sample not available"
)


@pytest.fixture
def repo_root() -> Path:
    return REPO


def edit_text(src: Path, dst: Path, old: str, new: str, count: int = 1) -> Path:
    """Copy ``src`` to ``dst`` replacing ``old`` by ``new`` (which must occur in src)."""
    text = src.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not found in {src}"
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(text.replace(old, new, count), encoding="utf-8")
    return dst


@pytest.fixture
def edited(tmp_path: Path) -> Callable[..., Path]:
    """edited("contracts/dc003.yaml", old, new) -> path of a modified copy in tmp_path."""

    def _make(rel: str, old: str, new: str, count: int = 1) -> Path:
        return edit_text(REPO / rel, tmp_path / rel, old, new, count)

    return _make


def git(cwd: Path, *args: str) -> str:
    out = subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True)
    return out.stdout


@pytest.fixture
def contract_repo(tmp_path: Path) -> Path:
    """A throw-away git repo holding a copy of the shipped contracts, committed once."""
    repo = tmp_path / "repo"
    (repo / "contracts").mkdir(parents=True)
    for src in (REPO / "contracts").glob("*.yaml"):
        (repo / "contracts" / src.name).write_text(src.read_text(encoding="utf-8"), encoding="utf-8")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "-c", "user.email=t@t", "-c", "user.name=t", "add", "-A")
    git(repo, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "base")
    return repo
