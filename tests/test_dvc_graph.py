"""dvc.yaml stays honest: every stage lists the code it imports and exactly the params sections it reads.

Code: the transitive closure of `dc003` / `pipeline` imports of the stage's module (all import statements,
including the ones inside functions) must be covered by the stage's deps. Params: a stage module declares
SECTIONS and loads only those (dc003.params.load_sections enforces it at run time); the stage's `params:`
list must be exactly that.
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import pytest
import yaml

from dc003.params import section_module
from dc003.params.profiles import load_profile, profile_paths

from .conftest import REPO

DVC_YAML = REPO / "dvc.yaml"
PARAMS = yaml.safe_load((REPO / "params.yaml").read_text())


def _stages() -> dict[str, dict]:  # type: ignore[type-arg]
    return yaml.safe_load(DVC_YAML.read_text()).get("stages") or {}


def _interpolate(text: str) -> str:
    def sub(match: re.Match[str]) -> str:
        node: object = PARAMS
        for part in match.group(1).split("."):
            assert isinstance(node, dict), match.group(0)
            node = node[part]
        return str(node)

    return re.sub(r"\$\{([^}]+)\}", sub, text)


def _module_file(name: str) -> Path | None:
    parts = name.split(".")
    base = REPO / "src" if parts[0] == "dc003" else REPO if parts[0] == "pipeline" else None
    if base is None:
        return None
    path = base.joinpath(*parts)
    if path.with_suffix(".py").exists():
        return path.with_suffix(".py")
    if (path / "__init__.py").exists():
        return path / "__init__.py"
    return None


@cache
def _imports(file: Path) -> frozenset[str]:
    tree = ast.parse(file.read_text(encoding="utf-8"))
    package = ".".join(file.relative_to(REPO / "src" if "src" in file.parts else REPO).with_suffix("").parts)
    if file.name == "__init__.py":
        package = package.rsplit(".", 1)[0] if package.endswith("__init__") else package
    names: set[str] = set()
    for node in _walk_runtime(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                if file.name != "__init__.py":
                    base = base[:-1]
                base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return frozenset(n for n in names if n.split(".")[0] in {"dc003", "pipeline"})


def _walk_runtime(tree: ast.AST) -> list[ast.AST]:
    """All nodes except those under `if TYPE_CHECKING:` (imports for type hints only)."""
    out: list[ast.AST] = []
    todo = [tree]
    while todo:
        node = todo.pop()
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            todo.extend(node.orelse)
            continue
        out.append(node)
        todo.extend(ast.iter_child_nodes(node))
    return out


def closure(module: str) -> set[Path]:
    seen: set[Path] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        parts = name.split(".")
        # importing a.b.c also runs a/__init__ and a/b/__init__
        for i in range(1, len(parts) + 1):
            file = _module_file(".".join(parts[:i]))
            if file is not None and file not in seen:
                seen.add(file)
                todo.extend(_imports(file))
    return seen


def _python_stages() -> list[tuple[str, str]]:
    out = []
    for name, stage in _stages().items():
        match = re.search(r"python -m (pipeline\.\w+)", str(stage.get("cmd", "")))
        if match:
            out.append((name, match.group(1)))
    return out


def test_the_graph_has_stages() -> None:
    assert _python_stages(), "dvc.yaml declares no python stages"


@pytest.mark.parametrize(("stage", "module"), _python_stages())
def test_stage_deps_cover_the_code_it_imports(stage: str, module: str) -> None:
    deps = [_interpolate(str(d)).rstrip("/") for d in _stages()[stage].get("deps", [])]
    # Package __init__ files that only re-export or set up the environment are shared by every stage;
    # listing them everywhere would make any docstring edit re-run the whole pipeline.
    # The stage shell and the error type are the failure path only: a failed stage writes no outputs.
    shared = {
        REPO / "src/dc003/__init__.py",
        REPO / "src/dc003/_env.py",
        REPO / "pipeline/__init__.py",
        REPO / "src/dc003/stage.py",
        REPO / "src/dc003/errors.py",
    }
    # the params models of the sections the stage reads (load_sections imports them by name)
    needed = closure(module).union(*(closure(section_module(s)) for s in _sections(module) or ()))
    uncovered = []
    for file in sorted(needed - shared):
        rel = str(file.relative_to(REPO))
        if not any(rel == d or rel.startswith(d + "/") for d in deps):
            uncovered.append(rel)
    assert not uncovered, f"stage {stage} imports code its deps do not list: {uncovered}"
    # and no stage depends on a params model it does not read (a bench knob's model re-runs no training)
    params_models = {d for d in deps if d.startswith("src/dc003/params/")}
    unread = sorted(params_models - {str(f.relative_to(REPO)) for f in needed})
    assert not unread, f"stage {stage} depends on params models it does not read: {unread}"


def _sections(module: str) -> tuple[str, ...] | None:
    """The stage module's SECTIONS (the params.yaml sections it reads), None when it reads none."""
    file = _module_file(module)
    assert file is not None
    for node in ast.parse(file.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "SECTIONS" for t in node.targets):
            return tuple(ast.literal_eval(node.value))
    return None


@pytest.mark.parametrize(("stage", "module"), _python_stages())
def test_stage_params_are_exactly_its_sections(stage: str, module: str) -> None:
    file = _module_file(module)
    assert file is not None
    sections = _sections(module)
    declared = _stages()[stage].get("params", [])
    names: list[str] = []
    files: set[str] = set()
    for entry in declared:
        if isinstance(entry, str):
            names.append(entry)
        else:  # {params.yaml: [...]} form, or {params/<profile>.yaml: null} (the whole profile file)
            for name, values in entry.items():
                if values is None:
                    files.add(name)
                else:
                    names.extend(values)
    if sections is None:
        assert not names and not files, (
            f"{module} declares no SECTIONS but stage {stage} lists params {names}"
        )
        return
    assert sorted(names) == sorted(sections), f"stage {stage} params {names} != {module}.SECTIONS {sections}"
    # a params profile overriding one of the stage's sections is a params file of that stage (and only then),
    # and the stage passes the dataset's profile to load_sections; the dataset stage chooses among them by
    # their applies_when, so every profile file is its params file
    wanted = {
        path.relative_to(REPO).as_posix()
        for path in profile_paths(REPO)
        if stage == "dataset" or load_profile(path).sections() & set(sections)
    }
    assert files == wanted, (
        f"stage {stage} lists profile files {sorted(files)}, its sections need {sorted(wanted)}"
    )
    if wanted and stage != "dataset":  # the dataset stage chooses the profile; the others read its choice
        assert "profile=dataset_profile(" in file.read_text(encoding="utf-8"), module


def test_outputs_are_written_once() -> None:
    outs: dict[str, str] = {}
    for name, stage in _stages().items():
        for kind in ("outs", "metrics", "plots"):
            for entry in stage.get(kind, []) or []:
                path = _interpolate(next(iter(entry)) if isinstance(entry, dict) else str(entry))
                assert path not in outs, f"{path} is written by both {outs[path]} and {name}"
                outs[path] = name
