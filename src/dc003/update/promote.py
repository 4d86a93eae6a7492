"""Where an update writes (:class:`Layout`), the gates on its measured files, and its promotion through
the registry (:func:`dc003.registry.promote_project`, the artifact ``two-tower-update``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dc003.io import read_json

if TYPE_CHECKING:
    from dc003.params.common import PathsParams
    from dc003.registry import PromotionDecision

UPDATE_ARTIFACT = "two-tower-update"  # the update's folder under dvc.yaml `artifacts:`
REPORT = "update.json"
DC002 = Path("contracts/dc002.yaml")
DC003 = Path("contracts/dc003.yaml")
GATES = Path("gates/promotion.yaml")


@dataclass(frozen=True)
class Layout:
    """Where the update writes: the project's relative paths, under ``root``."""

    root: Path
    paths: PathsParams

    def __truediv__(self, rel: str) -> Path:
        return self.root / rel

    @property
    def checkpoints(self) -> Path:
        return self.root / self.paths.checkpoints_dir

    @property
    def phase_dir(self) -> Path:
        return self.root / self.paths.phases_dir / "update"

    @property
    def metrics(self) -> Path:
        return self.root / self.paths.metrics_dir

    @property
    def live_dir(self) -> Path:
        return self.metrics / "train" / "update"

    @property
    def reports(self) -> Path:
        return self.root / self.paths.reports_dir

    @property
    def plots(self) -> Path:
        return self.root / self.paths.plots_dir

    @property
    def artifacts(self) -> Path:
        return self.root / self.paths.artifacts_dir


def measured_files(root: Path, out: Layout) -> dict[str, Path]:
    """The files the gates read, under the update's folder; the training-speed gate reads the update's own
    training record (its phase is ``update``, not ``phase_2``)."""
    from dc003.contracts import load_dc003
    from dc003.gates.check import source_paths
    from dc003.gates.declaration import load_declaration

    decl = load_declaration(root / GATES)
    files = source_paths(decl, load_dc003(root / DC003), out.paths, out.root)
    speed = [name for name, path in files.items() if path.name == "speed.json"]
    return {**files, **{name: out.live_dir / "speed.json" for name in speed}}


def gates_report(root: Path, out: Layout) -> Any:
    from dc003.contracts import load_dc003
    from dc003.gates.check import evaluate_gates
    from dc003.gates.declaration import load_declaration

    decl = load_declaration(root / GATES)
    return evaluate_gates(decl, load_dc003(root / DC003), measured_files(root, out), root=out.root)


def promote_update(root: Path, paths: PathsParams, *, stage: str | None = None) -> PromotionDecision:
    """The registry's promotion of the update's artifact, on the gates of the update's measured files;
    a folder with no update in it (``update.since`` null) is a refusal that names why."""
    from dc003.registry import PROD_STAGE, PromotionDecision, promote_project

    out = Layout(root / paths.update_dir, paths)
    report = out.root / REPORT
    if not report.is_file() or not read_json(report).get("requested"):
        from dc003.contracts import load_dc003

        return PromotionDecision(
            promoted=False,
            version=None,
            created=False,
            contract_version=load_dc003(root / DC003).contract.version,
            failing_gates=[],
            message=(
                f"no update in {paths.update_dir} (params update.since is null): nothing to promote; "
                "no GTO tag"
            ),
            artifact=UPDATE_ARTIFACT,
        )
    return promote_project(
        root, stage=stage or PROD_STAGE, name=UPDATE_ARTIFACT, files=measured_files(root, out)
    )
