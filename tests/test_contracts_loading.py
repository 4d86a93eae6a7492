"""Typed loading of contracts/dc003.yaml: valid, and each kind of invalid, as one clear line."""

from __future__ import annotations

from pathlib import Path

import pytest

from dc003.contracts import load_dc003
from dc003.contracts.thresholds import Threshold
from dc003.errors import Dc003Error

DC003 = "contracts/dc003.yaml"


def test_shipped_contract_loads_with_document_values() -> None:
    c = load_dc003()
    assert c.contract.id == "DC-003" and c.contract.version == "1.0.0"
    assert c.phases.phase_2.infonce.temperature == 0.08
    assert c.phases.phase_2.training_optimization.gradient_accumulation == 4
    assert (c.phases.phase_1.epochs.min, c.phases.phase_1.epochs.max) == (2, 3)
    assert c.user_tower.categorical_embeddings["age_group"].vocab_size == 6
    assert c.item_tower.categorical_embeddings["department_name"].vocab_size == 30
    assert [t.projection_dim for t in c.item_tower.text_features] == [64, 64]
    assert c.inference_requirements.accuracy.coverage.value == pytest.approx(0.80)
    assert c.inference_requirements.latency.single_user_embedding.value == pytest.approx(0.005)
    assert c.model_size_requirements.onnx_optimized.item_tower.value == pytest.approx(75e6)
    assert c.output_artifacts.path_of("user_tower.onnx") == "artifacts/user_tower.onnx"


def _error(path: Path) -> str:
    with pytest.raises(Dc003Error) as info:
        load_dc003(path)
    return str(info.value)


def test_out_of_range_value_names_file_key_and_rule(edited) -> None:  # type: ignore[no-untyped-def]
    bad = edited(
        DC003,
        "      temperature: 0.08\n      label_smoothing: 0.1",
        "      temperature: -0.1\n      label_smoothing: 0.1",
    )
    msg = _error(bad)
    assert msg.endswith("contracts/dc003.yaml: phases.phase_2.infonce.temperature: must be > 0 (got -0.1)")
    assert "\n" not in msg


def test_typo_key_suggests_the_declared_one(edited) -> None:  # type: ignore[no-untyped-def]
    msg = _error(edited(DC003, "margin: 0.1", "margn: 0.1"))
    assert "phases.phase_1.bpr_loss.margn: unknown key (did you mean 'margin'?)" in msg
    assert "required key is missing" not in msg  # the typo is reported once, not twice


def test_wrong_type_is_named(edited) -> None:  # type: ignore[no-untyped-def]
    msg = _error(edited(DC003, "batch_size: 4096", "batch_size: lots"))
    assert "phases.phase_3.batch_size: must be an integer (got 'lots')" in msg


def test_missing_key_and_list_index_in_path(edited) -> None:  # type: ignore[no-untyped-def]
    msg = _error(
        edited(DC003, "{name: age, normalization: min_max_scaling, ", "{name: age, normalization: zscore, ")
    )
    assert "user_tower.numerical_features[0].normalization: must be one of" in msg
    msg = _error(edited(DC003, "  owner: ML Research Team\n", ""))
    assert "contract.owner: required key is missing" in msg


def test_bad_threshold_and_semver(edited) -> None:  # type: ignore[no-untyped-def]
    msg = _error(edited(DC003, 'recall_50: ">= 0.10"', 'recall_50: "at least 0.10"'))
    assert "inference_requirements.accuracy.recall_50: must be a threshold like" in msg
    msg = _error(edited(DC003, "version: 1.0.0", "version: one"))
    assert "contract.version: must match" in msg


def test_cross_field_rules(edited) -> None:  # type: ignore[no-untyped-def]
    msg = _error(edited(DC003, "epochs: {min: 2, max: 3}", "epochs: {min: 3, max: 2}"))
    assert "phases.phase_1.epochs: min must be <= max (got min=3, max=2)" in msg
    msg = _error(edited(DC003, "num_heads: 4", "num_heads: 5"))
    assert "user_tower.sequence_encoder: d_model (64) must be divisible by num_heads (5)" in msg


def test_duplicate_keys_and_yaml_syntax(edited, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    msg = _error(
        edited(DC003, "  owner: ML Research Team\n", "  owner: ML Research Team\n  owner: Someone\n")
    )
    assert "duplicate key 'owner'" in msg
    msg = _error(edited(DC003, "  owner: ML Research Team\n", "  owner: [unclosed\n"))
    assert "invalid YAML" in msg and "line " in msg
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert _error(empty).endswith("empty.yaml: file is empty")
    assert _error(tmp_path / "nope.yaml").endswith("nope.yaml: file not found")


@pytest.mark.parametrize(
    ("text", "value", "upper"),
    [("< 5 ms", 0.005, True), (">= 80 %", 0.8, False), ("> 1000 /s", 1000.0, False), ("< 1 GB", 1e9, True)],
)
def test_threshold_parsing(text: str, value: float, upper: bool) -> None:
    t = Threshold.parse(text)
    assert t.value == pytest.approx(value) and t.is_upper_bound is upper


def test_threshold_comparisons() -> None:
    assert Threshold.parse(">= 0.10").passes(0.10) and not Threshold.parse("> 0.10").passes(0.10)
    assert not Threshold.parse("< 5 ms").passes(float("nan"))
    assert Threshold.parse(">= 0.2").tighter_than(Threshold.parse(">= 0.1"))
    assert Threshold.parse("< 3 ms").tighter_than(Threshold.parse("< 5 ms"))
    assert not Threshold.parse("< 5 ms").tighter_than(Threshold.parse("< 3 ms"))
    assert Threshold.parse("> 0.1").tighter_than(Threshold.parse(">= 0.1"))
    with pytest.raises(ValueError):
        Threshold.parse("< 5 parsecs")
