"""The whole DVC graph, really run by DVC, on tiny generated data in a throw-away copy of the project.

One test walks the user's path in order (each step needs the previous one's outputs):
`dvc repro` end to end -> a second `dvc repro` does nothing -> forced re-runs of the data stages and phase 1
change no output hash -> `dvc push`, a fresh clone, `dvc pull`: nothing stale, nothing runs ->
`dvc exp run -S phase_2.temperature=...`
re-runs phase_2 and what depends on it, nothing before -> `dc003 gates check` compares the measured
values and the promote stage's decision agrees with it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from .conftest import REPO, SHARED, git

pytestmark = pytest.mark.xdist_group("e2e")

ALL_STAGES = {
    "raw",
    "dataset",
    "validate",
    "text_embed",
    "phase_1",
    "phase_2",
    "phase_3",
    "phase_4",
    "evaluate",
    "export",
    "bench",
    "gates",
    "promote",
    "update",  # a no-op while params update.since is null
    "update_promote",
}
OUTPUT_DIRS = {"data", "checkpoints", "metrics", "plots", "reports", "artifacts"}
AFTER_PHASE_2 = {
    *("phase_2", "phase_3", "phase_4", "evaluate", "export", "bench", "gates", "promote"),
    *("update", "update_promote"),  # the update's warm start is checkpoints/best_model.pt
}


def _tiny_params(path: Path) -> None:
    params = yaml.safe_load(path.read_text(encoding="utf-8"))
    params["data"]["scale"] = "tiny"
    for phase in ("phase_1", "phase_2", "phase_3", "phase_4"):
        params[phase]["batch_size"] = 256
    params["evaluate"]["bootstrap_samples"] = 50
    params["bench"]["warmup"] = 2
    params["bench"]["repetitions"] = 5
    path.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """The project's files (tracked and new, not ignored ones) in a fresh git repo next to ../shared."""
    root = tmp_path / "work"
    repo = root / "main"
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        check=True,
        capture_output=True,
    ).stdout.split(b"\0")
    for rel in (f.decode() for f in files if f):
        src = REPO / rel
        if not src.is_file() or rel.split("/")[0] in OUTPUT_DIRS:
            continue  # deleted in the working tree, or a run's output (a fresh clone has none)
        dst = repo / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_bytes(src.read_bytes())
    for generated in ("dvc.lock",):  # start from nothing, as a fresh clone with no outputs would
        (repo / generated).unlink(missing_ok=True)
    (root / "shared").symlink_to(SHARED)
    _tiny_params(repo / "params.yaml")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "-c", "user.email=t@t", "-c", "user.name=t", "add", "-A")
    git(repo, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "tiny")
    return repo


def _env() -> dict[str, str]:
    env = dict(os.environ)
    bindir = str(Path(sys.executable).parent)  # stages run `python -m pipeline.X`: this venv's python
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    return env


def _run(repo: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(args), cwd=repo, env=_env(), capture_output=True, text=True)
    if ok:
        assert proc.returncode == 0, f"{' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def _dvc(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return _run(repo, str(Path(sys.executable).parent / "dvc"), *args)


def _ran(proc: subprocess.CompletedProcess[str]) -> set[str]:
    return set(re.findall(r"Running stage '([\w-]+)'", proc.stdout + proc.stderr))


def _json(path: Path) -> dict:  # type: ignore[type-arg]
    return json.loads(path.read_text(encoding="utf-8"))


def _outs(repo: Path) -> dict[str, dict[str, str]]:
    """Per stage, the hash dvc.lock records for each of its outputs, but the speed reports (the one output
    that is a timing on purpose: no stage but gates reads it)."""
    lock = yaml.safe_load((repo / "dvc.lock").read_text(encoding="utf-8"))["stages"]
    return {
        name: {o["path"]: o["md5"] for o in stage.get("outs", []) if not o["path"].endswith("/speed.json")}
        for name, stage in lock.items()
    }


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_dvc_repro_end_to_end_then_cached_then_an_experiment(project: Path) -> None:
    first = _dvc(project, "repro")
    assert _ran(first) == ALL_STAGES

    # the data contract was enforced and training depends on it
    summary = _json(project / "data/validation/summary.json")
    assert summary["passed"] is True

    # evaluation: the two-tower and every baseline side by side, plain numbers the gates read
    evaluation = _json(project / "metrics/evaluation_results.json")
    models = evaluation["models"]
    assert {"two_tower", "popularity", "trending", "repurchase", "als", "oracle"} <= set(models)
    for name, metrics in models.items():
        for key in ("recall_50", "ndcg_10", "map_12", "coverage_50", "cold_start_degradation"):
            value = metrics[key]
            assert value is None or 0.0 <= value <= 1.0 or key == "cold_start_degradation", (name, key)
    assert (project / "plots/training_curves.png").stat().st_size > 10_000
    # the generator's data: every evaluated test buyer's embedding probed against its taste
    probe = evaluation["taste_probe"]
    assert "skipped" not in probe, probe
    assert probe["customers"] == evaluation["users"]["n_users_evaluated"]
    assert -1.0 < probe["individual_r2"] < 1.0 and -1.0 < probe["feature_r2"] < 1.0
    assert sum(b["customers"] for b in probe["individual_r2_by_band"].values()) == probe["customers"]
    history = _json(project / "metrics/training_metrics.json")
    assert history  # the four phases' history

    # the exported towers and the measured deployment values exist where the gates read them
    for rel in (
        "artifacts/user_tower.onnx",
        "artifacts/item_tower.onnx",
        "artifacts/model_config.json",
        "artifacts/embedding_mappings.json",
        "artifacts/embedding_mappings.npz",
    ):
        assert (project / rel).stat().st_size > 0, rel
    export = _json(project / "reports/export_report.json")
    assert export["onnx_conversion"]["ok"] is True
    assert export["parity"]["min_cosine"] >= 0.999

    # gates: one entry per declared gate; the promote stage's decision agrees with them
    gates = _json(project / "metrics/gates.json")
    declared = yaml.safe_load((project / "gates/promotion.yaml").read_text())["gates"]
    assert [g["name"] for g in gates["gates"]] == [g["name"] for g in declared]
    failing = [g["name"] for g in gates["gates"] if g["status"] == "fail"]
    assert all(g["status"] == "not_applicable" for g in gates["gates"] if g["name"].startswith("gpu_"))
    decision = _json(project / "metrics/promotion.json")
    assert decision["promoted"] is (not failing)
    assert decision["failing_gates"] == failing
    tags = git(project, "tag", "-l").split()  # the GTO registry: a version only on a passing run
    assert (decision["tag"] in tags) if not failing else tags == [], tags

    check = _run(project, str(Path(sys.executable).parent / "dc003"), "gates", "check", "--json", ok=False)
    assert check.returncode == (1 if failing else 0)
    assert json.loads(check.stdout)["passed"] is (not failing)

    # nothing changed: nothing runs
    second = _dvc(project, "repro")
    assert _ran(second) == set()

    # the usual file modes: a teammate or a CI artifact step can read every report (not mkstemp's 0600)
    usual = 0o666 & ~_umask()
    for top in ("metrics", "reports", "plots", "artifacts"):
        for path in (project / top).rglob("*"):
            if path.is_file():
                assert path.stat().st_mode & 0o777 == usual, (path, oct(path.stat().st_mode))

    # every data stage (and phase 1) re-run on the same inputs writes the same bytes: no timing, cache
    # count or wall clock in an output, so a forced or cache-missed re-run re-runs nothing below it
    before = _outs(project)
    for stage in ("raw", "dataset", "validate", "text_embed", "phase_1"):
        assert _ran(_dvc(project, "repro", "-f", "-s", stage)) == {stage}
        assert _outs(project)[stage] == before[stage], stage
    assert _ran(_dvc(project, "repro")) == set()

    # a teammate: the run is pushed to the default remote (a directory beside the checkout), a fresh clone
    # pulls every committed output, and then nothing is stale and nothing runs
    git(project, "add", "-A")
    git(project, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "run")
    _dvc(project, "push")
    assert (project.parent / "dc003-dvc-remote").is_dir()
    clone = project.parent / "clone"
    git(project.parent, "clone", "-q", str(project), str(clone))
    assert not (clone / "checkpoints/best_model.pt").exists()
    _dvc(clone, "pull")
    assert (clone / "checkpoints/best_model.pt").read_bytes() == (
        project / "checkpoints/best_model.pt"
    ).read_bytes()
    status = _dvc(clone, "status")
    assert "up to date" in status.stdout, status.stdout
    assert _ran(_dvc(clone, "repro")) == set()

    # a bench-only knob, then the deploy params model itself: no training stage is stale
    params = clone / "params.yaml"
    params.write_text(params.read_text().replace("  repetitions: 5\n", "  repetitions: 6\n", 1))
    stale = set(json.loads(_dvc(clone, "status", "--json").stdout))
    assert stale == {"bench", "update"}, stale  # the update benches its own export
    model = clone / "src/dc003/params/deploy.py"
    model.write_text(model.read_text() + "\n# a reviewer's note\n")
    stale = set(json.loads(_dvc(clone, "status", "--json").stdout))
    assert "bench" in stale and not stale & {"raw", "dataset", "validate", "text_embed"}, stale
    assert not {s for s in stale if s.startswith("phase_")}, stale

    # an experiment re-runs phase_2 and what follows, nothing before
    exp = _dvc(project, "exp", "run", "-S", "phase_2.temperature=0.07")
    ran = _ran(exp)
    assert "phase_2" in ran and ran <= AFTER_PHASE_2
    assert not ran & (ALL_STAGES - AFTER_PHASE_2)
    # the re-run phase records the params it trained with (the model card reads its extensions there)
    assert _json(project / "checkpoints/phases/phase_2/summary.json")["params"]["temperature"] == 0.07


def test_a_changed_byte_in_the_kaggle_dir_reruns_raw(project: Path, tmp_path: Path) -> None:
    """data.kaggle_dir is versioned input: dvc.lock records its hash, one changed byte re-runs raw."""
    from dc003.data.synthetic import generate_hm_layout, scale_preset

    kaggle = project.parent / "my-hm-files"
    generate_hm_layout(kaggle, scale_preset("tiny"), seed=5, oracle=False)
    params = yaml.safe_load((project / "params.yaml").read_text(encoding="utf-8"))
    params["data"].update(source="kaggle", kaggle_dir="../my-hm-files")
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")

    assert _ran(_dvc(project, "repro", "raw")) == {"raw"}
    assert "up to date" in _dvc(project, "status", "raw").stdout
    recorded = {
        d["path"]: d["md5"]
        for d in yaml.safe_load((project / "dvc.lock").read_text())["stages"]["raw"]["deps"]
    }
    assert "../my-hm-files" in recorded

    path = kaggle / "transactions_train.csv"
    data = bytearray(path.read_bytes())
    last = data.rstrip(b"\n").rfind(b"\n") + 1 + 9  # the last digit of the last row's date
    data[last] = ord("1") if data[last] != ord("1") else ord("2")
    path.write_bytes(bytes(data))
    status = _dvc(project, "status", "raw").stdout
    assert "changed deps" in status and "my-hm-files" in status, status
    assert _ran(_dvc(project, "repro", "raw")) == {"raw"}
    assert (project / "data/raw/transactions_train.csv").read_bytes() == bytes(data)
    after = {
        d["path"]: d["md5"]
        for d in yaml.safe_load((project / "dvc.lock").read_text())["stages"]["raw"]["deps"]
    }
    assert after["../my-hm-files"] != recorded["../my-hm-files"]
