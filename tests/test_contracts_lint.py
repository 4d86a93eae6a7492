"""`dc003 contracts lint`: findings on the shipped contract and on crafted ones."""

from __future__ import annotations

import datetime as dt
import json

from typer.testing import CliRunner

from dc003.cli import app
from dc003.contracts import load_dc003
from dc003.contracts.findings import Finding
from dc003.contracts.lint import lint_dc003

DC003 = "contracts/dc003.yaml"


def _lint(path: str = DC003) -> list[Finding]:
    return lint_dc003(load_dc003(path), today=dt.date(2025, 11, 12))


def _find(findings: list[Finding], path: str) -> Finding:
    hits = [f for f in findings if path in f.paths]
    assert hits, f"no finding on {path}: {[f.line() for f in findings]}"
    return hits[0]


def test_shipped_contract_input_dims_and_scheduler() -> None:
    findings = _lint()
    user = _find(findings, "user_tower.input_dim")
    assert "128" in user.message and "132" in user.message
    assert "user_tower.sequence_encoder.d_model" in user.paths
    item = _find(findings, "item_tower.input_dim")
    assert "256" in item.message and "225" in item.message
    sched = _find(findings, "phases.phase_2.optimization.scheduler")
    assert "phase_hyperparameters.phase_2.scheduler" in sched.paths
    assert "cosine_annealing_warm_restarts" in sched.message and "'cosine_annealing'" in sched.message
    # phases 1, 3 and 4 agree with the table: no scheduler findings for them
    assert not any(
        f"phases.{p}.optimization.scheduler" in f.paths for f in findings for p in ("phase_1", "phase_3")
    )
    assert all(f.severity == "warning" for f in findings)


def test_storage_budget_at_declared_scale_is_reported() -> None:
    f = _find(_lint(), "scalability_requirements.embedding_storage")
    assert "5.17 GB" in f.message


def test_overdue_review_only_after_its_date() -> None:
    c = load_dc003()
    assert not any("contract.next_review" in f.paths for f in lint_dc003(c, today=dt.date(2025, 11, 12)))
    assert any("contract.next_review" in f.paths for f in lint_dc003(c, today=dt.date(2026, 1, 1)))


def test_colliding_artifact_paths_are_errors(edited) -> None:  # type: ignore[no-untyped-def]
    bad = edited(DC003, "path: checkpoints/item_tower.pt", "path: checkpoints/user_tower.pt")
    f = _find(_lint(str(bad)), "output_artifacts.checkpoints[2].path")
    assert f.severity == "error" and "output_artifacts.checkpoints[1].path" in f.paths
    bad = edited(DC003, "path: artifacts/model_config.json", "path: artifacts/user_tower.onnx/config.json")
    assert any(f.severity == "error" and "uses it as a directory" in f.message for f in _lint(str(bad)))


def test_impossible_thresholds_are_errors(edited) -> None:  # type: ignore[no-untyped-def]
    f = _find(
        _lint(str(edited(DC003, 'recall_50: ">= 0.10"', 'recall_50: ">= 1.2"'))),
        "inference_requirements.accuracy.recall_50",
    )
    assert f.severity == "error" and "can never be met" in f.message
    f = _find(
        _lint(str(edited(DC003, 'single_user_embedding: "< 5 ms"', 'single_user_embedding: "< 5 MB"'))),
        "inference_requirements.latency.single_user_embedding",
    )
    assert f.severity == "error" and "expected seconds" in f.message


def test_size_budgets_that_cannot_add_up(edited) -> None:  # type: ignore[no-untyped-def]
    findings = _lint(str(edited(DC003, 'complete_model: "< 300 MB"', 'complete_model: "< 120 MB"')))
    f = _find(findings, "model_size_requirements.pytorch_model.complete_model")
    assert f.severity == "error" and "exceeds the total" in f.message
    findings = _lint(str(edited(DC003, 'complete_model: "< 300 MB"', 'complete_model: "< 200 MB"')))
    f = _find(findings, "model_size_requirements.pytorch_model.complete_model")
    assert f.severity == "warning" and "250 MB" in f.message


def test_batch_size_and_lr_disagreements(edited) -> None:  # type: ignore[no-untyped-def]
    bad = edited(
        DC003,
        "phase_3: {learning_rate: 5.0e-5, batch_size: 4096",
        "phase_3: {learning_rate: 5.0e-4, batch_size: 2048",
    )
    findings = _lint(str(bad))
    assert _find(findings, "phase_hyperparameters.phase_3.batch_size").severity == "warning"
    assert _find(findings, "phase_hyperparameters.phase_3.learning_rate").severity == "warning"


def test_output_dim_mismatch_is_error(edited) -> None:  # type: ignore[no-untyped-def]
    bad = edited(
        DC003,
        "    - {name: dense_2, units: 128, activation: none}  # final embedding\n\nitem_tower:",
        "    - {name: dense_2, units: 64, activation: none}  # final embedding\n\nitem_tower:",
    )
    f = _find(_lint(str(bad)), "user_tower.output_dim")
    assert f.severity == "error"


def test_cli_json_lists_findings_and_exit_codes(edited) -> None:  # type: ignore[no-untyped-def]
    runner = CliRunner()
    ok = runner.invoke(app, ["contracts", "lint", "--json"])
    assert ok.exit_code == 0, ok.output
    report = json.loads(ok.stdout)
    findings = report["findings"]
    assert {"severity", "paths", "message"} <= set(findings[0])
    assert any("user_tower.input_dim" in f["paths"] for f in findings)
    assert report["passed"] is True and report["counts"] == {"errors": 0, "warnings": len(findings)}
    bad = edited(DC003, 'recall_50: ">= 0.10"', 'recall_50: ">= 1.2"')
    res = runner.invoke(app, ["contracts", "lint", "--json", "--dc003", str(bad)])
    assert res.exit_code == 1
    failed = json.loads(res.stdout)
    n_errors = sum(f["severity"] == "error" for f in failed["findings"])
    assert failed["passed"] is False and failed["counts"]["errors"] == n_errors >= 1
