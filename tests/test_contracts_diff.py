"""`dc003 contracts diff BASE`: classification and semver rules on crafted pairs in a temporary git repo."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from dc003.cli import app
from dc003.contracts.diff import classify, diff_contracts, diff_documents, flatten, to_markdown

from .conftest import git


def _edit(repo: Path, old: str, new: str, file: str = "contracts/dc003.yaml") -> None:
    path = repo / file
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def _cli(repo: Path, monkeypatch: pytest.MonkeyPatch, *args: str) -> tuple[int, str]:
    monkeypatch.chdir(repo)
    res = CliRunner().invoke(app, ["contracts", "diff", *args])
    return res.exit_code, res.stdout


def test_tightened_threshold_without_major_bump_fails(
    contract_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _edit(contract_repo, 'recall_50: ">= 0.10"', 'recall_50: ">= 0.12"')
    code, out = _cli(contract_repo, monkeypatch, "HEAD", "--json")
    assert code == 1
    result = json.loads(out)
    dc003 = next(f for f in result["files"] if f["file"] == "contracts/dc003.yaml")
    (change,) = dc003["changes"]
    assert change["path"] == "inference_requirements.accuracy.recall_50"
    assert change["kind"] == "breaking" and "tightened" in change["reason"]
    assert dc003["required_bump"] == "major" and not dc003["version_ok"] and result["ok"] is False


def test_major_bump_makes_the_breaking_change_acceptable(
    contract_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _edit(contract_repo, 'recall_50: ">= 0.10"', 'recall_50: ">= 0.12"')
    _edit(contract_repo, "version: 1.0.0", "version: 2.0.0")
    code, out = _cli(contract_repo, monkeypatch, "HEAD", "--json")
    assert code == 0, out
    assert json.loads(out)["ok"] is True
    # a minor bump is not enough
    _edit(contract_repo, "version: 2.0.0", "version: 1.1.0")
    assert _cli(contract_repo, monkeypatch, "HEAD", "--json")[0] == 1


def test_loosened_threshold_is_non_breaking_but_needs_a_bump(
    contract_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _edit(contract_repo, 'single_user_embedding: "< 5 ms"', 'single_user_embedding: "< 8 ms"')
    code, out = _cli(contract_repo, monkeypatch, "HEAD", "--json")
    file = json.loads(out)["files"][0]
    assert file["changes"][0]["kind"] == "non-breaking" and file["required_bump"] == "minor"
    assert code == 0  # only a breaking change without a major bump fails the command
    assert file["version_ok"] is False and "minor" in file["verdict"]
    _edit(contract_repo, "version: 1.0.0", "version: 1.1.0")
    assert json.loads(_cli(contract_repo, monkeypatch, "HEAD", "--json")[1])["files"][0]["version_ok"] is True


def test_committed_changes_against_an_older_ref(contract_repo: Path) -> None:
    _edit(contract_repo, "path: artifacts/user_tower.onnx", "path: artifacts/user.onnx")
    git(contract_repo, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qam", "rename")
    result = diff_contracts("HEAD~1", repo=contract_repo)
    paths = {c.path: c for c in result.files[0].changes}
    assert paths["output_artifacts.deployment[artifacts/user_tower.onnx].path"].kind == "breaking"
    assert paths["output_artifacts.deployment[artifacts/user.onnx].path"].kind == "non-breaking"  # added
    assert not result.ok


def test_unknown_ref_is_one_clear_error(contract_repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(contract_repo)
    res = CliRunner().invoke(app, ["contracts", "diff", "no-such-branch"])
    assert res.exit_code == 1 and "no-such-branch: not a git commit" in res.stderr


def test_named_list_entries_match_by_name() -> None:
    base = {
        "contract": {"version": "1.0.0"},
        "t": {"numerical_features": [{"name": "a", "d": 1}, {"name": "b", "d": 2}]},
    }
    new = {
        "contract": {"version": "1.0.0"},
        "t": {"numerical_features": [{"name": "z", "d": 9}, {"name": "a", "d": 1}, {"name": "b", "d": 2}]},
    }
    assert "t.numerical_features[a].d" in flatten(base)
    changes = diff_documents("x.yaml", base, new).changes
    assert [c.path for c in changes] == ["t.numerical_features[z].d", "t.numerical_features[z].name"]


@pytest.mark.parametrize(
    ("path", "old", "new", "kind"),
    [
        ("inference_requirements.latency.single_user_embedding", "< 5 ms", "< 3 ms", "breaking"),
        ("inference_requirements.latency.single_user_embedding", "< 5 ms", "<= 5 ms", "non-breaking"),
        ("model_size_requirements.onnx_optimized.user_tower", "< 50 MB", "< 40 MB", "breaking"),
        ("user_tower.output_dim", 128, 64, "breaking"),
        ("item_tower.categorical_embeddings.department_name.vocab_size", 30, 64, "breaking"),
        ("user_tower.dense_layers[layer_1].units", 256, 512, "non-breaking"),
        ("phases.phase_2.infonce.temperature", 0.08, 0.07, "non-breaking"),
        ("design_principles.efficiency", "sub-10ms", "sub-5ms", "non-breaking"),
        ("tables.items.columns.price.type", "float", "int", "breaking"),
        ("tables.items.columns.price.type", "float", "<absent>", "breaking"),
        ("tables.items.columns.new_col.type", "<absent>", "float", "non-breaking"),
        ("tables.users.columns.age.nullable", False, True, "breaking"),
        ("scalability_requirements.user_scale", 10_000_000, 20_000_000, "breaking"),
        ("scalability_requirements.user_scale", 10_000_000, 5_000_000, "non-breaking"),
    ],
)
def test_classification_rules(path: str, old: object, new: object, kind: str) -> None:
    assert classify(path, old, new)[0] == kind


def test_markdown_is_a_pr_comment(contract_repo: Path) -> None:
    _edit(contract_repo, 'ndcg_10: ">= 0.15"', 'ndcg_10: ">= 0.2"')
    md = to_markdown(diff_contracts("HEAD", repo=contract_repo))
    assert md.startswith("## Contract changes vs `HEAD`")
    assert "| 🔴 breaking | `inference_requirements.accuracy.ndcg_10` | `>= 0.15` | `>= 0.2` |" in md
    assert "lacks a major version bump" in md


def test_no_changes_passes(contract_repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code, out = _cli(contract_repo, monkeypatch, "HEAD", "--json")
    assert code == 0 and all(not f["changes"] for f in json.loads(out)["files"])


def test_added_clarifications_never_count_as_breaking(repo_root: Path) -> None:
    """A clarification documents a reading of the contract: its key or text may look like a tower input, a
    dataset key or a threshold, and adding it still breaks nobody."""
    base = yaml.safe_load((repo_root / "contracts/dc003.yaml").read_text(encoding="utf-8"))
    new = copy.deepcopy(base)
    new["clarifications"] += [
        {"path": "user_tower.numerical_features", "value": ["age"], "reason": "age is the only number"},
        {"path": "splits.keys", "value": "customer_id", "reason": "the join keys"},
        {"path": "serving.min_score", "value": ">= 0.5", "reason": "a reading of the threshold"},
    ]
    changes = diff_documents("contracts/dc003.yaml", base, new).changes
    assert len(changes) >= 3
    assert {c.kind for c in changes} == {"non-breaking"}, [
        (c.path, c.reason) for c in changes if c.kind != "non-breaking"
    ]
    # the same keys outside the documentation sections still classify by what they declare
    assert classify("user_tower.numerical_features[age].dim", 1, 2)[0] == "breaking"
