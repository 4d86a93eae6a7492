"""GTO registry: a passing promotion tags the dvc.yaml artifact, a refused one tags nothing (real git,
real GTO, real DVC on a few bytes of artifacts)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import gto.api
import pytest
import yaml
from typer.testing import CliRunner

from dc003.cli import app
from dc003.errors import Dc003Error
from dc003.gates.check import GateResult, GatesReport
from dc003.registry import MODEL_ARTIFACT, declared_artifact, dvc_md5, register_model, versions

from .conftest import REPO
from .conftest import git as _git_out

DVC = str(Path(sys.executable).parent / "dvc")
ID = ("-c", "user.email=t@t", "-c", "user.name=t")


def git(cwd: Path, *args: str) -> str:
    return _git_out(cwd, *args).strip()


def _report(passed: bool, contract_version: str = "1.0.0") -> GatesReport:
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
        contract_version=contract_version,
        counts={"pass": int(passed), "fail": int(not passed), "not_applicable": 0},
        gates=[gate],
    )


def _artifacts(root: Path, content: str) -> None:
    for name in ("user_tower.onnx", "model_config.json"):
        (root / "artifacts").mkdir(parents=True, exist_ok=True)
        (root / "artifacts" / name).write_text(f"{name}:{content}")


def _dvc(root: Path, *args: str) -> None:
    run = subprocess.run([DVC, *args], cwd=root, capture_output=True, text=True)
    assert run.returncode == 0, f"dvc {' '.join(args)}: {run.stderr or run.stdout}"


def _shipped_artifacts_block() -> dict[str, object]:
    return {"artifacts": yaml.safe_load((REPO / "dvc.yaml").read_text(encoding="utf-8"))["artifacts"]}


def dvc_project(root: Path, remote: Path) -> Path:
    """``root``: a new git + DVC repo with a local remote, dvc.yaml with the shipped artifacts block and an
    export stage whose output is ``artifacts`` (nothing committed yet)."""
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    _dvc(root, "init", "-q")
    _dvc(root, "remote", "add", "-d", "local", str(remote))
    spec = {**_shipped_artifacts_block(), "stages": {"export": {"cmd": "true", "outs": ["artifacts"]}}}
    (root / "dvc.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    (root / ".gitignore").write_text("/artifacts\n")
    paths = {"artifacts_dir": "artifacts", "update_dir": "updates"}  # every path the artifacts block names
    (root / "params.yaml").write_text(yaml.safe_dump({"paths": paths}))
    return root


@pytest.fixture
def dvc_repo(tmp_path: Path) -> Path:
    """git + DVC repo: dvc.yaml with the shipped artifacts block and an export stage; base committed,
    then `dvc commit` records new artifacts in dvc.lock, uncommitted (as inside `dvc repro`)."""
    root = dvc_project(tmp_path / "proj", tmp_path / "remote")
    _artifacts(root, "a")
    _dvc(root, "commit", "-f", "-q", "export")
    git(root, *ID, "add", "-A")
    git(root, *ID, "commit", "-qm", "base")
    _artifacts(root, "b")
    _dvc(root, "commit", "-f", "-q", "export")  # dvc.lock now differs from HEAD's
    return root


def _tags(root: Path) -> list[str]:
    return git(root, "tag", "-l").split()


def test_dvc_yaml_declares_the_model_at_the_export_folder(dvc_repo: Path) -> None:
    params = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    art = declared_artifact(REPO)
    assert art["path"] == params["paths"]["artifacts_dir"] and art["type"] == "model"
    # DVC reads the shipped block the same way (the fixture holds it and a paths.artifacts_dir)
    from dvc.repo import Repo

    with Repo(str(dvc_repo)) as repo:
        assert repo.artifacts.read()["dvc.yaml"][MODEL_ARTIFACT].path == "artifacts"


def test_passing_promotion_tags_a_commit_that_resolves_to_the_files(dvc_repo: Path, tmp_path: Path) -> None:
    root = dvc_repo
    head, status = git(root, "rev-parse", "HEAD"), git(root, "status", "--porcelain")
    decision = register_model(root, _report(True), contract_id="DC-003", metrics={"recall_50": 0.2})
    assert decision.promoted and decision.created and decision.version == "v1.0.0"
    assert decision.tag == "two-tower@v1.0.0" and decision.artifacts_md5 == dvc_md5(root / "artifacts")
    assert set(_tags(root)) == {"two-tower@v1.0.0", "two-tower#prod#1"}
    # gto show lists it, in prod; gto history has the registration and the assignment
    shown = gto.api.show(str(root))
    assert shown[MODEL_ARTIFACT]["version"] == "v1.0.0" and shown[MODEL_ARTIFACT]["stage"]["prod"] == "v1.0.0"
    events = {(e["event"], e["version"]) for e in gto.api.history(str(root), MODEL_ARTIFACT)}
    assert {("registration", "v1.0.0"), ("assignment", "v1.0.0")} <= events
    # the tag points at a snapshot commit (HEAD + the new dvc.lock); the branch, index and tree are untouched
    assert decision.commit != head and git(root, "rev-parse", f"{decision.commit}^") == head
    assert decision.artifacts_md5 in git(root, "show", f"{decision.tag}:dvc.lock")
    assert git(root, "rev-parse", "HEAD") == head and git(root, "status", "--porcelain") == status
    message = git(root, "for-each-ref", f"refs/tags/{decision.tag}", "--format=%(contents)")
    assert "contract: DC-003 1.0.0" in message and "metric_recall_50: 0.2" in message
    # same artifacts again: the same version, no tag added
    again = register_model(root, _report(True), contract_id="DC-003", metrics={})
    assert again.promoted and not again.created and again.version == "v1.0.0"
    assert len(_tags(root)) == 2 and [v["version"] for v in versions(root)] == ["v1.0.0"]
    # on another machine: `dvc push` + the tag -> `dvc artifacts get --stage prod` gives these files
    _dvc(root, "push", "-q")
    out = tmp_path / "fetched"
    _dvc(tmp_path, "artifacts", "get", str(root), MODEL_ARTIFACT, "--stage", "prod", "-o", str(out))
    assert (out / "user_tower.onnx").read_text() == "user_tower.onnx:b"


def test_refused_promotion_creates_no_tag_and_no_commit(dvc_repo: Path) -> None:
    objects = git(dvc_repo, "count-objects", "-v")
    decision = register_model(dvc_repo, _report(False), contract_id="DC-003", metrics={})
    assert not decision.promoted and decision.failing_gates == ["recall_50"] and decision.tag is None
    assert "no GTO tag" in decision.message
    assert _tags(dvc_repo) == [] and gto.api.show(str(dvc_repo)) == {}
    assert git(dvc_repo, "count-objects", "-v") == objects


def test_versions_bump_minor_then_major_on_a_contract_major_change(dvc_repo: Path) -> None:
    git(dvc_repo, *ID, "commit", "-qam", "lock")  # dvc.lock committed: HEAD itself is tagged
    first = register_model(dvc_repo, _report(True), contract_id="DC-003", metrics={})
    assert first.commit == git(dvc_repo, "rev-parse", "HEAD")
    # GTO orders versions and assignments by tag time, which git keeps to the second: real promotions are
    # minutes apart, these are not
    time.sleep(1.1)
    _artifacts(dvc_repo, "c")
    _dvc(dvc_repo, "commit", "-f", "-q", "export")
    assert register_model(dvc_repo, _report(True), contract_id="DC-003", metrics={}).version == "v1.1.0"
    time.sleep(1.1)
    _artifacts(dvc_repo, "d")
    _dvc(dvc_repo, "commit", "-f", "-q", "export")
    second = register_model(dvc_repo, _report(True, "2.0.0"), contract_id="DC-003", metrics={})
    assert second.version == "v2.0.0"
    assert [v["version"] for v in versions(dvc_repo)] == ["v2.0.0", "v1.1.0", "v1.0.0"]
    assert gto.api.show(str(dvc_repo))[MODEL_ARTIFACT]["stage"]["prod"] == "v2.0.0"


def test_files_differing_from_dvc_lock_are_not_registered(dvc_repo: Path) -> None:
    _artifacts(dvc_repo, "not committed to DVC")
    with pytest.raises(Dc003Error, match=r"dvc\.lock records"):
        register_model(dvc_repo, _report(True), contract_id="DC-003", metrics={})
    assert _tags(dvc_repo) == []


def test_no_git_or_no_commit_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(Dc003Error, match="not a git repository"):
        register_model(tmp_path, _report(True), contract_id="DC-003", metrics={})
    git(tmp_path, "init", "-q")
    with pytest.raises(Dc003Error, match="no commit yet"):
        register_model(tmp_path, _report(True), contract_id="DC-003", metrics={})
    result = CliRunner().invoke(app, ["registry", "list", "--repo", str(tmp_path)])
    assert result.exit_code != 0 and "no commit yet" in result.output and "Traceback" not in result.output


def _measured_project(tmp_path: Path, *, recall_50: float) -> Path:
    """A committed git project whose measured files pass every gate except, when asked, recall@50;
    dvc.yaml declares the artifact and dvc.lock records the export folder."""
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
    (root / "dvc.yaml").write_text(yaml.safe_dump(_shipped_artifacts_block()))
    lock = {"stages": {"export": {"outs": [{"path": "artifacts", "md5": dvc_md5(root / "artifacts")}]}}}
    (root / "dvc.lock").write_text(yaml.safe_dump(lock))
    if not (root / ".git").exists():
        git(root, "init", "-q", "-b", "main")
    git(root, *ID, "add", "-A")
    git(root, *ID, "commit", "-qm", "project")
    return root


def test_project_promotion_and_the_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _measured_project(tmp_path, recall_50=0.01)
    monkeypatch.chdir(root)
    runner = CliRunner()
    result = runner.invoke(app, ["registry", "promote"])
    assert result.exit_code == 1 and "recall_50" in result.output and _tags(root) == []
    assert "no GTO artifact" in runner.invoke(app, ["registry", "list"]).output
    data = json.loads((root / "metrics/evaluation_results.json").read_text())
    data["models"]["two_tower"]["recall_50"] = 0.3
    (root / "metrics/evaluation_results.json").write_text(json.dumps(data))
    result = runner.invoke(app, ["registry", "promote", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["version"] == "v1.0.0"
    listed = runner.invoke(app, ["registry", "list", "--json", "--history"])
    assert listed.exit_code == 0, listed.output
    payload = json.loads(listed.output)
    assert payload["gto_show"][MODEL_ARTIFACT]["stage"]["prod"] == "v1.0.0"
    assert payload["versions"][0]["metric_recall_50"] == "0.3"
    assert {e["event"] for e in payload["history"]} >= {"registration", "assignment"}
    table = runner.invoke(app, ["registry", "list"])
    assert table.exit_code == 0 and "v1.0.0" in table.output and "gto show" in table.output


def test_promote_stage_records_a_refusal_and_exits_0(tmp_path: Path) -> None:
    root = _measured_project(tmp_path, recall_50=0.01)
    shutil.copytree(REPO / "pipeline", root / "pipeline", dirs_exist_ok=True)
    run = subprocess.run(
        [sys.executable, "-m", "pipeline.promote", "--decision", "metrics/promotion.json"],
        cwd=root,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    decision = json.loads((root / "metrics/promotion.json").read_text())
    assert decision["promoted"] is False and "recall_50" in decision["failing_gates"]
    assert _tags(root) == []


PROMOTE_CMD = (
    'python -c "from pathlib import Path; from tests.test_registry import _report; '
    "from dc003.registry import register_model; "
    "print(register_model(Path('.'), _report(True), contract_id='DC-003', metrics={}).message)\""
)


def test_inside_dvc_repro_the_tag_resolves_to_the_new_export(dvc_repo: Path, tmp_path: Path) -> None:
    """As in a first `dvc repro`: export runs, DVC writes its lock entry, then promote tags; dvc.lock is
    untracked and nothing is committed, yet the tag's commit holds it."""
    shutil.copytree(REPO / "tests", dvc_repo / "tests", ignore=shutil.ignore_patterns("__pycache__"))
    spec = yaml.safe_load((dvc_repo / "dvc.yaml").read_text())
    spec["stages"] = {
        "export": {
            "cmd": "mkdir -p artifacts && echo repro > artifacts/user_tower.onnx && echo c > artifacts/c",
            "outs": ["artifacts"],
        },
        "promote": {"cmd": PROMOTE_CMD, "deps": ["artifacts"]},
    }
    (dvc_repo / "dvc.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    git(dvc_repo, "rm", "-q", "--cached", "dvc.lock")  # a first run: dvc.lock was never committed
    git(dvc_repo, *ID, "commit", "-qm", "no dvc.lock yet")
    head = git(dvc_repo, "rev-parse", "HEAD")
    _dvc(dvc_repo, "repro", "-q")
    assert _tags(dvc_repo) == ["two-tower#prod#1", "two-tower@v1.0.0"]
    assert git(dvc_repo, "rev-parse", "HEAD") == head
    assert dvc_md5(dvc_repo / "artifacts") in git(dvc_repo, "show", "two-tower@v1.0.0:dvc.lock")
    _dvc(dvc_repo, "push", "-q")
    out = tmp_path / "fetched"
    _dvc(tmp_path, "artifacts", "get", str(dvc_repo), "two-tower", "--rev", "v1.0.0", "-o", str(out))
    assert (out / "user_tower.onnx").read_text() == "repro\n"
