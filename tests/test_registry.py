"""Promotion: only on passing gates; a refusal leaves the promoted versions untouched."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dc003.cli import app
from dc003.errors import Dc003Error
from dc003.gates.check import GateResult, GatesReport
from dc003.registry import list_versions, promote


def _report(passed: bool) -> GatesReport:
    gate = GateResult(
        name="recall_50",
        group="quality",
        kind="threshold",
        observed=0.2 if passed else 0.05,
        threshold=">= 0.1",
        passed=passed,
        status="pass" if passed else "fail",
        source="metrics/evaluation_results.json: models.two_tower.recall_50",
        contract_key="inference_requirements.accuracy.recall_50",
        reason="" if passed else "0.05 does not meet >= 0.1",
    )
    return GatesReport(
        passed=passed,
        contract_version="1.0.0",
        counts={"pass": int(passed), "fail": int(not passed), "not_applicable": 0},
        gates=[gate],
    )


def _artifacts(root: Path, content: str) -> list[Path]:
    files = [root / "artifacts/user_tower.onnx", root / "artifacts/model_config.json"]
    for f in files:
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(f"{f.name}:{content}")
    return files


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_promote_registers_versions_with_a_manifest(tmp_path: Path) -> None:
    registry = tmp_path / "registry"
    files = _artifacts(tmp_path, "a")
    entry, created = promote(
        _report(True), files, registry, root=tmp_path, contract_id="DC-003", metrics={"recall_50": 0.2}
    )
    assert created and entry.version == "v1" and entry.recall_50 == 0.2
    manifest = json.loads((registry / "v1/manifest.json").read_text())
    assert manifest["contract_version"] == "1.0.0" and manifest["gates"]["passed"] is True
    stored = {f["path"]: f for f in manifest["files"]}
    assert set(stored) == {"artifacts/user_tower.onnx", "artifacts/model_config.json"}
    assert (
        registry / "v1" / stored["artifacts/user_tower.onnx"]["stored_as"]
    ).read_text() == "user_tower.onnx:a"
    # the same artifacts again: no new version
    again, created = promote(_report(True), files, registry, root=tmp_path, contract_id="DC-003", metrics={})
    assert not created and again.version == "v1"
    # new artifacts: v2, v1 kept
    files = _artifacts(tmp_path, "b")
    entry, created = promote(_report(True), files, registry, root=tmp_path, contract_id="DC-003", metrics={})
    assert created and entry.version == "v2"
    assert [v.version for v in list_versions(registry)] == ["v1", "v2"]
    assert (registry / "v1/files/artifacts/user_tower.onnx").read_text() == "user_tower.onnx:a"


def test_failing_gates_refuse_and_leave_the_registry_untouched(tmp_path: Path) -> None:
    registry = tmp_path / "registry"
    promote(
        _report(True), _artifacts(tmp_path, "a"), registry, root=tmp_path, contract_id="DC-003", metrics={}
    )
    before = _snapshot(registry)
    with pytest.raises(Dc003Error, match="promotion refused: 1 gate"):
        promote(
            _report(False),
            _artifacts(tmp_path, "b"),
            registry,
            root=tmp_path,
            contract_id="DC-003",
            metrics={},
        )
    assert _snapshot(registry) == before
    assert [v.version for v in list_versions(registry)] == ["v1"]


def test_missing_artifact_refuses(tmp_path: Path) -> None:
    with pytest.raises(Dc003Error, match="artifacts missing"):
        promote(
            _report(True),
            [tmp_path / "nope.onnx"],
            tmp_path / "registry",
            root=tmp_path,
            contract_id="DC-003",
            metrics={},
        )
    assert not (tmp_path / "registry").exists()


def test_registry_list_cli(tmp_path: Path) -> None:
    registry = tmp_path / "registry"
    runner = CliRunner()
    assert (
        "no promoted versions" in runner.invoke(app, ["registry", "list", "--registry", str(registry)]).stdout
    )
    promote(
        _report(True), _artifacts(tmp_path, "a"), registry, root=tmp_path, contract_id="DC-003", metrics={}
    )
    res = runner.invoke(app, ["registry", "list", "--registry", str(registry), "--json"])
    assert res.exit_code == 0 and [v["version"] for v in json.loads(res.stdout)] == ["v1"]


def _measured_project(tmp_path: Path, *, recall_50: float) -> Path:
    """A project whose measured files pass every gate except, when asked, recall@50."""
    import copy

    from dc003.contracts import load_dc003

    from .test_gates import GOOD, _project

    files = copy.deepcopy(GOOD)
    files["metrics/evaluation_results.json"]["models"]["two_tower"]["recall_50"] = recall_50
    root = _project(tmp_path, files)
    for _, _, art in load_dc003(root / "contracts/dc003.yaml").output_artifacts.all():
        target = root / art.path
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            target.write_text(f"{art.path}: weights")
    return root


def test_project_promotion_refuses_on_a_failing_gate_and_keeps_the_promoted_version(tmp_path: Path) -> None:
    from dc003.registry import promote_project

    root = _measured_project(tmp_path, recall_50=0.21)
    registry = root / "registry"
    first = promote_project(root, registry)
    assert first.promoted and first.version == "v1" and first.created
    manifest = json.loads((registry / "v1/manifest.json").read_text())
    assert "checkpoints/best_model.pt" in {f["path"] for f in manifest["files"]}
    assert manifest["metrics"]["recall_50"] == 0.21
    before = _snapshot(registry)

    # a new model that misses the recall bar: refused by name, the registry is byte-for-byte unchanged
    (root / "checkpoints/best_model.pt").write_text("worse weights")
    evaluation = root / "metrics/evaluation_results.json"
    data = json.loads(evaluation.read_text())
    data["models"]["two_tower"]["recall_50"] = 0.05
    evaluation.write_text(json.dumps(data))
    refused = promote_project(root, registry)
    assert not refused.promoted and refused.failing_gates == ["recall_50", "final_metrics"]
    assert "recall_50" in refused.message and "registry unchanged" in refused.message
    assert _snapshot(registry) == before


def test_registry_promote_cli_exits_1_on_refusal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _measured_project(tmp_path, recall_50=0.01)
    monkeypatch.chdir(root)
    result = CliRunner().invoke(app, ["registry", "promote"])
    assert result.exit_code == 1
    assert "recall_50" in result.output and not (root / "registry").exists()
    data = json.loads((root / "metrics/evaluation_results.json").read_text())
    data["models"]["two_tower"]["recall_50"] = 0.3
    (root / "metrics/evaluation_results.json").write_text(json.dumps(data))
    result = CliRunner().invoke(app, ["registry", "promote", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["version"] == "v1"
