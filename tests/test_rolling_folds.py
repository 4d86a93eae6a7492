"""`scripts/rolling_folds.py` end to end on tiny generated data: two weekly folds, each built, embedded,
trained and evaluated by the pipeline's own functions (a real process, real MiniLM, real training).

Checked: one record per fold, the second fold's data ending exactly one week before the first's; every
fold scores the two-tower and every baseline on the same test users; the summary's mean and values are
those of the folds; the Markdown table is written next to the JSON.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from .conftest import REPO

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("rolling_folds")]

BASELINES = ("popularity", "trending", "repurchase", "als")


def test_rolling_folds_script_on_tiny_data(tmp_path: Path) -> None:
    from dc003.contracts import load_dc002
    from dc003.data.raw import make_raw
    from dc003.params.full import load_params

    params = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    params["data"]["scale"] = "tiny"
    params["evaluate"]["bootstrap_samples"] = 20
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    loaded = load_params(tmp_path / "params.yaml")
    raw = tmp_path / "raw"
    make_raw(raw, loaded.data, loaded.seed, load_dc002())

    out = tmp_path / "folds.json"
    # a short training budget: the script's plumbing is under test, not the model's quality
    budget = [f"--set=phase_{n}.epochs=1" for n in (1, 2, 3, 4)] + [
        f"--set=phase_{n}.examples_per_epoch=2048" for n in (1, 2, 3, 4)
    ]
    run = subprocess.run(
        [sys.executable, "scripts/rolling_folds.py", "--raw-dir", str(raw), "--folds", "2",
         "--out", str(out), "--work", str(tmp_path / "work"), "--params", str(tmp_path / "params.yaml"),
         *budget],
        cwd=REPO, capture_output=True, text=True, timeout=900,
        env={**os.environ, "PYTHONPATH": str(REPO / "src") + os.pathsep + str(REPO)},
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(out.read_text(encoding="utf-8"))
    folds = report["folds"]
    assert [f["fold"] for f in folds] == [0, 1]
    assert folds[0]["last_day"] - folds[1]["last_day"] == 7
    for f in folds:
        assert f["test_users"] > 0
        assert set(f["models"]) >= {"two_tower", *BASELINES}
        for name, metrics in f["models"].items():
            assert 0.0 <= metrics["recall_50"] <= 1.0, (f["fold"], name)
        # the paired differences are two-tower minus each baseline, on the same users
        assert set(f["paired"]) >= set(BASELINES)
    for name in ("two_tower", *BASELINES):
        summary = report["summary"][name]["recall_50"]
        values = [f["models"][name]["recall_50"] for f in folds]
        assert summary["values"] == pytest.approx(values)
        assert summary["mean"] == pytest.approx(float(np.mean(values)))
    table = out.with_suffix(".md").read_text(encoding="utf-8")
    assert "| two_tower |" in table and "## recall_50" in table
