"""Checkpoints that cannot be used: one `error:` line naming the file, never a traceback.

A file that torch's weights-only loader refuses (pickled Python objects: loading it the old way could run
arbitrary code) says it may be unsafe, instead of PyTorch's paragraph advising ``weights_only=False``; a
truncated, empty or foreign file says it is unreadable. Checked on :func:`dc003.model.checkpoint.load` and
through the stages that load checkpoints (evaluate, a phase reading its input), run as DVC runs them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dc003.errors import Dc003Error
from dc003.model import checkpoint
from dc003.model.checkpoint import CheckpointError
from dc003.model.two_tower import TwoTowerModel
from tests.test_train_fixtures import tiny_config

from .conftest import REPO

UNSAFE = "torch.load(weights_only=True) refused it"


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "model.pt"
    torch.manual_seed(0)
    checkpoint.save_model(path, TwoTowerModel(tiny_config()), phase="phase_1")
    return path


def _tampered(good: Path, path: Path) -> Path:
    """The good checkpoint plus a pickled callable (what a malicious file would carry)."""
    obj = checkpoint.load(good)
    obj["hook"] = os.system
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(obj, path)
    return path


def _truncated(good: Path, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(good.read_bytes()[: good.stat().st_size * 2 // 3])
    return path


def test_a_good_checkpoint_loads(good: Path) -> None:
    model, ckpt = checkpoint.load_model(good)
    assert ckpt["phase"] == "phase_1" and model.config.n_items == tiny_config().n_items


def test_a_refused_checkpoint_is_one_line_saying_it_may_be_unsafe(good: Path, tmp_path: Path) -> None:
    path = _tampered(good, tmp_path / "model.pt")
    with pytest.raises(CheckpointError) as err:
        checkpoint.load_model(path)
    message = str(err.value)
    assert err.value.unsafe and isinstance(err.value, Dc003Error)
    assert message.startswith(f"{path}: {UNSAFE}") and "may be unsafe to load" in message
    assert "\n" not in message and "Re-running" not in message  # not PyTorch's paragraph
    assert message.endswith("delete it and re-run the stage that writes it")


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (None, "RuntimeError: PytorchStreamReader failed reading zip archive"),  # truncated
        (b"", "EOFError"),
        (b"this is not a checkpoint", ""),  # whatever the legacy unpickler trips on
    ],
)
def test_an_unreadable_checkpoint_is_one_line(
    good: Path, tmp_path: Path, content: bytes | None, reason: str
) -> None:
    path = tmp_path / "model.pt"
    if content is None:
        _truncated(good, path)
    else:
        path.write_bytes(content)
    with pytest.raises(CheckpointError) as err:
        checkpoint.load(path)
    message = str(err.value)
    assert not err.value.unsafe and "\n" not in message
    assert message.startswith(f"{path}: unreadable checkpoint, truncated or corrupted ({reason}")


def test_a_file_that_is_not_a_dc003_checkpoint(tmp_path: Path) -> None:
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match=r"list\.pt: not a dc003 checkpoint \(top level is list\)"):
        checkpoint.load(tmp_path / "list.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "plain.pt")
    with pytest.raises(CheckpointError, match=r"plain\.pt: not a dc003 model checkpoint \(no 'config'"):
        checkpoint.load_model(tmp_path / "plain.pt")
    with pytest.raises(CheckpointError, match=r"missing\.pt: checkpoint not found"):
        checkpoint.load(tmp_path / "missing.pt")


# ---------------------------------------------------------------------------------------------- the stages


def _stage(cwd: Path, module: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env["PYTHONPATH"] = str(REPO)
    return subprocess.run(
        [sys.executable, "-m", module, *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """params.yaml and contracts/, what a stage reads from its working directory."""
    (tmp_path / "contracts").mkdir()
    for src in (REPO / "contracts").glob("*.yaml"):
        (tmp_path / "contracts" / src.name).write_bytes(src.read_bytes())
    (tmp_path / "params.yaml").write_bytes((REPO / "params.yaml").read_bytes())
    return tmp_path


def _one_error_line(proc: subprocess.CompletedProcess[str], stage: str) -> str:
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr[-3000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: stage {stage}: "), proc.stderr[-3000:]
    return lines[0]


@pytest.mark.slow
def test_evaluate_refuses_a_tampered_checkpoint_in_one_line(good: Path, project: Path) -> None:
    bad = _tampered(good, project / "checkpoints/best_model.pt")
    proc = _stage(
        project, "pipeline.evaluate", "--checkpoint", str(bad), "--dataset", "data/dataset", "--text",
        "data/text_embed", "--training-metrics", "metrics/training_metrics.json", "--metrics", "metrics",
        "--plots", "plots", "--reports", "reports",
    )  # fmt: skip
    line = _one_error_line(proc, "evaluate")
    assert f"{bad}: {UNSAFE}" in line and "may be unsafe to load" in line
    assert not (project / "metrics").exists()  # nothing written from it


@pytest.mark.slow
def test_a_phase_with_a_truncated_input_checkpoint_fails_in_one_line(good: Path, project: Path) -> None:
    bad = _truncated(good, project / "checkpoints/phases/phase_2/model.pt")
    proc = _stage(
        project, "pipeline.phase_3", "--dataset", "data/dataset", "--text", "data/text_embed",
        "--input", "checkpoints/phases/phase_2", "--out", "checkpoints/phases/phase_3",
        "--live", "metrics/train/phase_3", "--resume", "data/resume/phase_3",
    )  # fmt: skip
    line = _one_error_line(proc, "phase_3")
    assert "checkpoints/phases/phase_2/model.pt: unreadable checkpoint, truncated or corrupted" in line
    assert "delete it and re-run the stage that writes it" in line and bad.is_file()
