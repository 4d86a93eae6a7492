"""`dc003 params check`: type/range violations fail; contract differences are listed as deviations."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from dc003.cli import app
from dc003.errors import Dc003Error
from dc003.params.check import check_params
from dc003.params.common import contract_refs
from dc003.params.full import load_params, with_overrides

P2_TEMP = "  temperature: 0.08\n  label_smoothing: 0.1\n"


def _check(path: str) -> tuple[int, str, str]:
    res = CliRunner().invoke(app, ["params", "check", "--params", path, "--json"])
    return res.exit_code, res.stdout, res.stderr


def test_shipped_params_are_valid() -> None:
    code, out, _ = _check("params.yaml")
    assert code == 0
    report = json.loads(out)
    keys = {d["key"] for d in report["deviations"]}
    # the default run scales batch sizes down for the small default data: listed, not fatal
    assert "phase_2.batch_size" in keys
    assert "phase_2.temperature" not in keys


def test_negative_temperature_fails_naming_the_key(edited) -> None:  # type: ignore[no-untyped-def]
    bad = edited("params.yaml", P2_TEMP, P2_TEMP.replace("0.08", "-1"))
    code, _, err = _check(str(bad))
    assert code == 1
    assert "params.yaml: phase_2.temperature: must be > 0 (got -1)" in err


def test_changed_temperature_is_a_deviation(edited) -> None:  # type: ignore[no-untyped-def]
    dev = edited("params.yaml", P2_TEMP, P2_TEMP.replace("0.08", "0.07"))
    code, out, _ = _check(str(dev))
    assert code == 0
    (d,) = [d for d in json.loads(out)["deviations"] if d["key"] == "phase_2.temperature"]
    assert d["value"] == 0.07 and d["contract_value"] == 0.08
    assert d["contract_key"] == "phases.phase_2.infonce.temperature"


def test_epochs_outside_the_contract_range_is_a_deviation(edited) -> None:  # type: ignore[no-untyped-def]
    dev = edited("params.yaml", "phase_2:\n  epochs: 5", "phase_2:\n  epochs: 9")
    report = check_params(dev, "contracts/dc003.yaml", "contracts/dc002.yaml")
    (d,) = [d for d in report.deviations if d.key == "phase_2.epochs"]
    assert d.contract_value == "3-5" and "outside" in d.note


def test_typo_and_missing_section(edited) -> None:  # type: ignore[no-untyped-def]
    code, _, err = _check(str(edited("params.yaml", "  popularity_weight: 0.5", "  popularity_wieght: 0.5")))
    assert code == 1 and "phase_2.popularity_wieght: unknown key (did you mean 'popularity_weight'?)" in err
    code, _, err = _check(str(edited("params.yaml", "bench:\n", "benchmark:\n")))
    assert code == 1 and "bench: required key is missing" not in err  # reported as the typo it is
    assert "benchmark: unknown key (did you mean 'bench'?)" in err


def test_every_contract_reference_resolves() -> None:
    from dc003.contracts import load_dc003
    from dc003.params.check import resolve
    from dc003.params.full import Params

    contract = load_dc003()
    refs = [r for r in contract_refs(Params) if r[1].startswith("dc003:")]
    assert len(refs) > 20
    for _, ref in refs:
        resolve(contract, ref.split(":", 1)[1])  # raises if a reference is stale


def test_overrides_revalidate() -> None:
    params = load_params()
    assert with_overrides(params, {"data.scale": "tiny"}).data.scale == "tiny"
    with pytest.raises(Dc003Error, match=r"phase_2\.temperature: must be > 0"):
        with_overrides(params, {"phase_2.temperature": 0})
    with pytest.raises(KeyError):
        with_overrides(params, {"phase_2.temprature": 0.1})


def test_knobs_beyond_the_contract_are_listed_as_extensions(edited) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = _check("params.yaml")
    assert code == 0
    (e,) = [e for e in json.loads(out)["extensions"] if e["key"] == "phase_2.distillation_weight"]
    assert e["value"] == 1.0 and "distillation" in e["note"]
    # an extension has no contract value, so it is never also a deviation; switched off, it shows its 0
    assert "phase_2.distillation_weight" not in {d["key"] for d in json.loads(out)["deviations"]}
    off = edited("params.yaml", "  distillation_weight: 1.0", "  distillation_weight: 0.0")
    report = check_params(off, "contracts/dc003.yaml", "contracts/dc002.yaml")
    assert [e.value for e in report.extensions if e.key == "phase_2.distillation_weight"] == [0.0]
    res = CliRunner().invoke(app, ["params", "check", "--params", str(off)])
    assert res.exit_code == 0 and "extension(s) beyond the contracts" in res.stdout


def test_the_sections_table_is_the_full_model() -> None:
    from dc003.params import SECTIONS, section_module
    from dc003.params.full import Params

    assert list(SECTIONS) == list(Params.model_fields)
    for name, field in Params.model_fields.items():
        if name != "seed":
            assert field.annotation is not None
            assert field.annotation.__module__ == section_module(name), name
            assert SECTIONS[name].endswith(":" + field.annotation.__name__), name


def test_a_stage_loads_only_the_models_of_its_sections(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Reading phase_2 imports the training params models and not the deploy ones; a broken value in a
    section the stage does not read is not its business (the bench stage, and `params check`, catch it)."""
    import subprocess
    import sys

    from .conftest import REPO, edit_text

    path = edit_text(REPO / "params.yaml", tmp_path / "params.yaml", "  warmup: 50\n", "  warmup: -5\n")
    code = (
        "import sys; from dc003.params import load_sections; "
        f"v = load_sections({str(path)!r}, ('seed', 'phase_2')); print(v.phase_2.temperature); "
        "print(sorted(m for m in sys.modules if m.startswith('dc003.params.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "dc003.params.train" in out and "dc003.params.deploy" not in out, out
    with pytest.raises(Dc003Error, match="bench"):
        from dc003.params import load_sections

        load_sections(path, ("bench",))
