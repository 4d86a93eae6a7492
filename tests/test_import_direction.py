"""One direction of imports on the model side of the package (README, Layout):

    model, scoring  <-  train  <-  evaluate, deploy  <-  serve

``scoring`` (ranking, metrics, baselines, the serving score) and ``model`` import neither each other nor
anything above them; ``train`` imports them; ``evaluate`` and ``deploy`` import all three and not each
other; ``serve`` (the HTTP service) imports ``deploy`` and ``scoring`` only, so never torch. Imports are
counted as in tests/test_dvc_graph.py (every import statement, the ones inside functions included; not the
ones under ``if TYPE_CHECKING:``, which are type hints only).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import REPO
from .test_dvc_graph import _imports

SRC = REPO / "src" / "dc003"

# each package of the model side, and the ones of that side it may import
MAY_IMPORT: dict[str, set[str]] = {
    "model": set(),
    "scoring": set(),
    "train": {"model", "scoring"},
    "evaluate": {"model", "scoring", "train"},
    "deploy": {"model", "scoring", "train"},
    "serve": {"deploy", "scoring"},  # the HTTP service: no model or train, so no torch in its processes
}


def _package_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "dc003" and len(parts) > 1 and parts[1] in MAY_IMPORT else None


def test_every_package_of_the_model_side_exists() -> None:
    assert all((SRC / name / "__init__.py").is_file() for name in MAY_IMPORT)


@pytest.mark.parametrize("package", sorted(MAY_IMPORT))
def test_imports_go_one_way(package: str) -> None:
    wrong: list[str] = []
    for file in sorted((SRC / package).rglob("*.py")):
        for module in sorted(_imports(file)):
            other = _package_of(module)
            if other is not None and other != package and other not in MAY_IMPORT[package]:
                wrong.append(f"{Path(file).relative_to(REPO)} imports {module}")
    assert not wrong, (
        f"dc003.{package} may import only {sorted(MAY_IMPORT[package])} of {sorted(MAY_IMPORT)}:\n"
        + ("\n".join(wrong))
    )


def test_the_check_sees_imports_inside_functions_not_type_only_ones() -> None:
    """evaluate/run.py imports dc003.train.validation inside functions only, and dc003.params.deploy for
    type hints only."""
    found = _imports(SRC / "evaluate" / "run.py")
    assert "dc003.train.validation" in found
    assert "dc003.params.deploy" not in found
