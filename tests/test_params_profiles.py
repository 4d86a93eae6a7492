"""Params profiles (params/*.yaml): the dataset stage picks the one whose applies_when holds for its raw
inputs, records it in the manifest, and the later stages apply the same overrides to their sections."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dc003.data.ingest import raw_facts
from dc003.errors import Dc003Error
from dc003.params import dataset_profile, load_sections
from dc003.params.full import load_params
from dc003.params.profiles import choose_profile, load_profile

from .conftest import HM_SAMPLE, REPO, needs_hm_sample

SMALL = "params/kaggle-small.yaml"
FULL = "params/full-scale.yaml"


@needs_hm_sample
def test_the_small_data_profile_applies_to_the_real_sample_only() -> None:
    assert raw_facts(HM_SAMPLE) == ("kaggle", 1364)
    assert choose_profile("kaggle", 1364, REPO) == SMALL
    when = load_profile(REPO / SMALL).applies_when
    assert choose_profile("kaggle", when.max_customers + 1, REPO) is None  # full H&M: params.yaml as it is
    assert choose_profile("synthetic", 1364, REPO) is None  # the generator at a small scale


def test_the_full_scale_profile_applies_at_hm_size_from_either_source() -> None:
    when = load_profile(REPO / FULL).applies_when
    assert when.source is None and when.min_customers is not None
    for source in ("synthetic", "kaggle"):
        assert choose_profile(source, 1_371_980, REPO) == FULL  # the full H&M customer count
        assert choose_profile(source, when.min_customers - 1, REPO) in (None, SMALL)
    assert choose_profile("synthetic", 20_000, REPO) is None  # the default data: params.yaml as it is
    assert choose_profile("kaggle", when.min_customers - 1, REPO) is None  # between the two profiles
    overrides = load_profile(REPO / FULL).overrides
    budgets = {k: v for k, v in overrides.items() if k.endswith("examples_per_epoch")}
    base = load_params(REPO / "params.yaml")
    assert budgets and all(v > 0 for v in budgets.values())  # a budget, never "every example"
    assert base.phase_1.examples_per_epoch == 0 and base.phase_2.examples_per_epoch == 0


def test_the_full_scale_budgets_reach_the_training_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    from dc003.train.run import _settings

    monkeypatch.chdir(REPO)
    overrides = load_profile(FULL).overrides
    for n in (1, 2, 3, 4):
        phase = f"phase_{n}"
        view = getattr(load_sections("params.yaml", ("seed", phase), profile=FULL), phase)
        loop = _settings(phase, 42, view)
        assert loop.val_max_users == overrides[f"{phase}.val_max_users"] > 0
        budget = overrides.get(f"{phase}.examples_per_epoch", view.examples_per_epoch)
        assert loop.examples_per_epoch == budget
        plain = _settings(phase, 42, getattr(load_sections("params.yaml", ("seed", phase)), phase))
        assert plain.val_max_users == 0  # params.yaml alone: every val buyer


def test_a_profile_without_a_customer_bound_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "profile.yaml"
    text = (REPO / FULL).read_text(encoding="utf-8")
    text = text.replace("  min_customers: 250000\n", "  source: kaggle\n")
    bad.write_text(text, encoding="utf-8")
    with pytest.raises(Dc003Error, match=r"profile.yaml.*applies_when.*max_customers or min_customers"):
        load_profile(bad)


def test_a_stage_applies_the_profile_to_its_own_sections_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    base = load_params("params.yaml")
    profile = load_profile(SMALL)
    view = load_sections("params.yaml", ("seed", "phase_2"), profile=SMALL)
    assert view.profile == SMALL
    assert view.phase_2.epochs == profile.overrides["phase_2.epochs"] != base.phase_2.epochs
    assert view.phase_2.batch_size == profile.overrides["phase_2.batch_size"]
    with pytest.raises(AttributeError):
        view.dataset  # noqa: B018  (not declared by this stage, whatever the profile touches)
    assert load_sections("params.yaml", ("seed", "phase_2")).phase_2.epochs == base.phase_2.epochs


def test_a_typo_in_a_profile_is_one_error_naming_the_file_and_key(tmp_path: Path) -> None:
    bad = tmp_path / "params" / "kaggle-small.yaml"
    bad.parent.mkdir()
    text = (REPO / SMALL).read_text(encoding="utf-8").replace("phase_2.epochs:", "phase_2.epoch:")
    bad.write_text(text, encoding="utf-8")
    with pytest.raises(Dc003Error, match=r"kaggle-small.yaml: overrides: unknown params key 'phase_2.epoch'"):
        load_sections(REPO / "params.yaml", ("phase_2",), profile=str(bad))


@needs_hm_sample
def test_the_dataset_stage_records_the_profile_and_builds_with_it(tmp_path: Path) -> None:
    """The real stage on the H&M sample: the profile is chosen from the raw files, the train window is the
    profile's, the manifest says so, and a later stage's load reads the same profile from it."""
    work = tmp_path / "work"
    for rel in ("contracts", "params"):
        shutil.copytree(REPO / rel, work / rel)
    shutil.copy(REPO / "params.yaml", work / "params.yaml")
    raw = work / "raw"
    raw.mkdir()
    for name in ("articles.parquet", "customers.csv", "transactions_train.csv"):
        (raw / name).symlink_to(HM_SAMPLE / name)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-m", "pipeline.dataset", "--raw", "raw", "--out", "dataset"],
        cwd=work, env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"params profile {SMALL} applied" in done.stdout
    manifest = json.loads((work / "dataset/manifest.json").read_text())
    assert manifest["params_profile"] == SMALL
    window = load_profile(REPO / SMALL).overrides["dataset.train_window_days"]
    assert manifest["params"]["train_window_days"] == window
    assert dataset_profile(work / "dataset") == SMALL
