"""Gates: each gate passes on good measurements and fails on bad ones; missing is never a pass."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from dc003.cli import app
from dc003.gates import run_gates
from dc003.gates.declaration import load_declaration

from .conftest import REPO

GOOD: dict[str, dict[str, Any]] = {
    "metrics/evaluation_results.json": {
        "models": {
            "two_tower": {
                "recall_50": 0.21,
                "ndcg_10": 0.19,
                "map_12": 0.05,
                "coverage_50": 0.91,
                "cold_start_degradation": 0.08,
            }
        }
    },
    "metrics/bench.json": {
        "device": {"cuda": False},
        "latency_ms": {
            "single_user_embedding": {"p50": 0.4, "p95": 0.6, "p99": 0.9},
            "single_item_embedding_cached_text": {"p50": 0.2, "p95": 0.3, "p99": 0.5},
            "batch_1k_users": {"p50": 20.0, "p95": 25.0, "p99": 30.0},
            "batch_1k_items": {"p50": 5.0, "p95": 6.0, "p99": 7.0},
        },
        "throughput": {"cpu_user_embeddings_per_s": 40000.0, "gpu_user_embeddings_per_s": None},
        "memory_mb": {"user_tower_session": 60.0, "item_tower_session": 70.0, "total": 130.0},
        "sizes_mb": {
            "pytorch_user_tower": 3.0,
            "pytorch_item_tower": 2.0,
            "pytorch_complete_model": 5.0,
            "onnx_user_tower": 1.5,
            "onnx_item_tower": 1.0,
            "onnx_total": 2.5,
            "vocab_embeddings": 1.2,
            "embedding_storage": 12.0,
        },
    },
    "reports/export_report.json": {
        "onnx_conversion": {"ok": True},
        "parity": {"min_cosine": 0.99993, "recall_50_abs_diff": 0.001},
        "stability": {"identical_across_runs": True},
    },
    "reports/architecture_validation.json": {
        "device": {"cuda": False},
        "parameter_count": {"user_tower": 650_000, "item_tower": 400_000},
        "gradient_flow": {"ok": True},
        "output_shapes": {"ok": True},
        "loss_trend": {"ok": True, "improves_each_epoch": True},
    },
    "metrics/train/phase_2/speed.json": {
        "device": {"name": "cpu", "cuda": False},
        "samples_per_s": 5200.0,
        "gpu_peak_memory_percent": None,
    },
}


def _project(tmp_path: Path, files: dict[str, dict[str, Any]]) -> Path:
    root = tmp_path / "proj"
    for rel in ("contracts/dc003.yaml", "gates/promotion.yaml", "params.yaml"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / rel, root / rel)
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(json.dumps(data))
    return root


def _run(root: Path):  # type: ignore[no-untyped-def]
    return run_gates(
        root / "gates/promotion.yaml", root / "contracts/dc003.yaml", root / "params.yaml", root=root
    )


def _set(files: dict[str, dict[str, Any]], file: str, key: str, value: Any) -> dict[str, dict[str, Any]]:
    out = copy.deepcopy(files)
    node = out[file]
    *parents, leaf = key.split(".")
    for p in parents:
        node = node[p]
    node[leaf] = value
    return out


def test_all_gates_pass_on_good_measurements(tmp_path: Path) -> None:
    report = _run(_project(tmp_path, GOOD))
    assert report.passed, [g for g in report.gates if g.status == "fail"]
    by = {g.name: g for g in report.gates}
    # GPU gates are not applicable on a CPU run: reported with the reason, never as passed
    assert by["gpu_throughput"].status == "not_applicable" and by["gpu_throughput"].passed is None
    assert by["gpu_memory_usage"].status == "not_applicable"
    assert by["recall_50"].threshold == ">= 0.1" and by["recall_50"].observed == 0.21
    assert by["recall_50"].source == "metrics/evaluation_results.json: models.two_tower.recall_50"
    assert by["parameter_count_user_tower"].threshold == "100,000..25,000,000"


# (gate, file, key, failing value): one bad measurement per gate
FAILURES = [
    ("recall_50", "metrics/evaluation_results.json", "models.two_tower.recall_50", 0.09),
    ("ndcg_10", "metrics/evaluation_results.json", "models.two_tower.ndcg_10", 0.149),
    ("coverage_50", "metrics/evaluation_results.json", "models.two_tower.coverage_50", 0.79),
    (
        "cold_start_degradation",
        "metrics/evaluation_results.json",
        "models.two_tower.cold_start_degradation",
        0.2,
    ),
    ("pytorch_user_tower_size", "metrics/bench.json", "sizes_mb.pytorch_user_tower", 100.0),
    ("pytorch_item_tower_size", "metrics/bench.json", "sizes_mb.pytorch_item_tower", 151.0),
    ("pytorch_complete_model_size", "metrics/bench.json", "sizes_mb.pytorch_complete_model", 300.5),
    ("onnx_user_tower_size", "metrics/bench.json", "sizes_mb.onnx_user_tower", 50.0),
    ("onnx_item_tower_size", "metrics/bench.json", "sizes_mb.onnx_item_tower", 80.0),
    ("onnx_total_size", "metrics/bench.json", "sizes_mb.onnx_total", 150.0),
    ("vocab_embeddings_size", "metrics/bench.json", "sizes_mb.vocab_embeddings", 51.0),
    ("embedding_storage", "metrics/bench.json", "sizes_mb.embedding_storage", 5000.0),
    ("latency_single_user", "metrics/bench.json", "latency_ms.single_user_embedding.p95", 5.0),
    ("latency_single_item", "metrics/bench.json", "latency_ms.single_item_embedding_cached_text.p95", 3.1),
    ("latency_batch_1k_users", "metrics/bench.json", "latency_ms.batch_1k_users.p95", 120.0),
    ("latency_batch_1k_items", "metrics/bench.json", "latency_ms.batch_1k_items.p95", 100.0),
    ("cpu_throughput", "metrics/bench.json", "throughput.cpu_user_embeddings_per_s", 999.0),
    ("user_tower_memory", "metrics/bench.json", "memory_mb.user_tower_session", 200.0),
    ("item_tower_memory", "metrics/bench.json", "memory_mb.item_tower_session", 301.0),
    ("total_model_memory", "metrics/bench.json", "memory_mb.total", 1000.0),
    (
        "parameter_count_user_tower",
        "reports/architecture_validation.json",
        "parameter_count.user_tower",
        99_999,
    ),
    (
        "parameter_count_item_tower",
        "reports/architecture_validation.json",
        "parameter_count.item_tower",
        6_000_000,
    ),
    ("gradient_flow", "reports/architecture_validation.json", "gradient_flow.ok", False),
    ("embedding_dimensions", "reports/architecture_validation.json", "output_shapes.ok", False),
    ("loss_convergence", "reports/architecture_validation.json", "loss_trend.ok", False),
    ("convergence_rate", "reports/architecture_validation.json", "loss_trend.improves_each_epoch", False),
    (
        "training_speed",
        "metrics/train/phase_2/speed.json",
        "samples_per_s",
        1000.0,
    ),
    ("onnx_conversion", "reports/export_report.json", "onnx_conversion.ok", False),
    ("onnx_parity_cosine", "reports/export_report.json", "parity.min_cosine", 0.998),
    ("onnx_parity_recall_50", "reports/export_report.json", "parity.recall_50_abs_diff", 0.006),
    ("numerical_stability", "reports/export_report.json", "stability.identical_across_runs", False),
]


def test_every_declared_gate_has_a_failure_case() -> None:
    decl = load_declaration(REPO / "gates/promotion.yaml")
    measured = {g.name for g in decl.gates if g.kind != "all_of" and g.requires is None}
    assert measured == {f[0] for f in FAILURES}


@pytest.mark.parametrize(("gate", "file", "key", "value"), FAILURES, ids=[f[0] for f in FAILURES])
def test_each_gate_fails_on_a_bad_measurement(
    tmp_path: Path, gate: str, file: str, key: str, value: Any
) -> None:
    report = _run(_project(tmp_path, _set(GOOD, file, key, value)))
    assert not report.passed
    failed = {g.name for g in report.failed()}
    summaries = {"final_metrics", "inference_latency", "model_size"}
    assert failed - summaries == {gate}


def test_gpu_gate_applies_when_cuda_was_there(tmp_path: Path) -> None:
    files = _set(GOOD, "metrics/bench.json", "device.cuda", True)
    by = {g.name: g for g in _run(_project(tmp_path, files)).gates}
    assert by["gpu_throughput"].status == "fail" and "not measured" in by["gpu_throughput"].reason
    files = _set(files, "metrics/bench.json", "throughput.gpu_user_embeddings_per_s", 25000.0)
    by = {g.name: g for g in _run(_project(tmp_path / "b", files)).gates}
    assert by["gpu_throughput"].status == "pass"


def test_missing_file_or_key_is_a_failure_not_a_pass(tmp_path: Path) -> None:
    files = {k: v for k, v in GOOD.items() if k != "metrics/bench.json"}
    by = {g.name: g for g in _run(_project(tmp_path, files)).gates}
    assert by["latency_single_user"].status == "fail" and "not measured" in by["latency_single_user"].reason
    assert by["gpu_throughput"].status == "fail"  # no bench, so no evidence the run lacked CUDA
    files = _set(GOOD, "metrics/evaluation_results.json", "models.two_tower", {"ndcg_10": 0.2})
    by = {g.name: g for g in _run(_project(tmp_path / "b", files)).gates}
    assert by["recall_50"].status == "fail" and "missing" in by["recall_50"].reason


def test_tightened_contract_threshold_fails_that_gate(tmp_path: Path) -> None:
    root = _project(tmp_path, GOOD)
    contract = root / "contracts/dc003.yaml"
    contract.write_text(contract.read_text().replace('recall_50: ">= 0.10"', 'recall_50: ">= 0.25"'))
    report = _run(root)
    assert {g.name for g in report.failed()} == {"recall_50", "final_metrics"}


def test_cli_json_markdown_and_exit_codes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _project(tmp_path, GOOD)
    monkeypatch.chdir(root)
    runner = CliRunner()
    res = runner.invoke(app, ["gates", "check", "--json", "--out", "metrics/gates.json"])
    assert res.exit_code == 0, res.output
    payload = json.loads(res.stdout)
    assert payload["passed"] is True
    assert {"name", "observed", "threshold", "passed"} <= set(payload["gates"][0])
    assert json.loads((root / "metrics/gates.json").read_text()) == payload
    md = runner.invoke(app, ["gates", "check", "--markdown"]).stdout
    assert md.startswith("## Promotion gates — ✅ all gates pass")
    (root / "metrics/evaluation_results.json").write_text(
        json.dumps(
            _set(GOOD, "metrics/evaluation_results.json", "models.two_tower.recall_50", 0.05)[
                "metrics/evaluation_results.json"
            ]
        )
    )
    res = runner.invoke(app, ["gates", "check"])
    assert res.exit_code == 1 and "recall_50" in res.stdout
    assert runner.invoke(app, ["gates", "check", "--no-fail"]).exit_code == 0


def test_a_failure_shows_the_observed_value_in_the_thresholds_unit(tmp_path: Path) -> None:
    bad = _set(_set(GOOD, "metrics/evaluation_results.json", "models.two_tower.coverage_50", 0.2795),
               "metrics/evaluation_results.json", "models.two_tower.cold_start_degradation", 1)  # fmt: skip
    by = {g.name: g for g in _run(_project(tmp_path, bad)).gates}
    assert by["coverage_50"].reason == "27.95 % does not meet >= 80 %"
    assert by["cold_start_degradation"].reason == "100 % does not meet < 20 %"
