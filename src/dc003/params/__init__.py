"""params.yaml as one typed model. Every section lives in the module of the area that reads it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import Field

from dc003.contracts.base import Declared
from dc003.params.common import PathsParams
from dc003.params.data import DataParams, DatasetParams
from dc003.params.deploy import BenchParams, ExportParams, ServingParams
from dc003.params.evaluate import EvaluateParams
from dc003.params.train import (
    ModelParams,
    Phase1Params,
    Phase2Params,
    Phase3Params,
    Phase4Params,
    TextEmbedParams,
)

PARAMS_PATH = Path("params.yaml")


class Params(Declared):
    seed: int = Field(ge=0)
    paths: PathsParams
    data: DataParams
    dataset: DatasetParams
    text_embed: TextEmbedParams
    model: ModelParams
    phase_1: Phase1Params
    phase_2: Phase2Params
    phase_3: Phase3Params
    phase_4: Phase4Params
    evaluate: EvaluateParams
    serving: ServingParams
    export: ExportParams
    bench: BenchParams


def load_params(path: str | os.PathLike[str] = PARAMS_PATH) -> Params:
    from dc003.contracts.loading import load_model

    return load_model(Params, path)


def with_overrides(params: Params, overrides: dict[str, Any]) -> Params:
    """A copy of ``params`` with dotted-key overrides (``{"data.scale": "tiny"}``), re-validated."""
    from dc003.contracts.loading import validate_data

    data = params.model_dump(mode="json")
    for dotted, value in overrides.items():
        node = data
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node[key]
        if leaf not in node:
            raise KeyError(f"unknown params key {dotted!r}")
        node[leaf] = value
    return validate_data(Params, data, "params (overrides)")


class SectionView:
    """The params a stage declared it reads, and nothing else.

    A stage calls ``load_sections(path, ("seed", "phase_2"))``; touching any other section raises, so
    the ``params:`` list of its dvc.yaml stage (checked by tests/test_dvc_graph.py) cannot silently fall
    behind what the code reads. Without that, a knob could change results without re-running the stage.
    """

    def __init__(self, params: Params, sections: tuple[str, ...], source: str) -> None:
        unknown = [s for s in sections if s not in Params.model_fields]
        if unknown:
            raise KeyError(f"unknown params sections {unknown}")
        self._params = params
        self._sections = sections
        self._source = source
        self.profile: str | None = None  # the params profile applied (see dc003.params.profiles)

    @property
    def sections(self) -> tuple[str, ...]:
        return self._sections

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if name not in self._sections:
            raise AttributeError(
                f"{self._source}: section {name!r} is not among the sections this stage declared "
                f"{list(self._sections)}; add it to the stage's params in dvc.yaml and to its SECTIONS"
            )
        return getattr(self._params, name)


def load_sections(
    path: str | os.PathLike[str], sections: tuple[str, ...], *, profile: str | None = None
) -> SectionView:
    """The stage's declared sections of ``path``; with ``profile`` (a params/*.yaml profile file, as the
    dataset manifest records it: :func:`dataset_profile`), its overrides of those sections applied."""
    from dc003.contracts.loading import display_path

    params = load_params(path)
    if profile is not None:
        params = apply_profile(params, profile, sections)
    view = SectionView(params, sections, display_path(path))
    view.profile = profile
    return view


def apply_profile(
    params: Params, profile: str | os.PathLike[str], sections: tuple[str, ...] | None = None
) -> Params:
    """``params`` with a params profile's overrides (of ``sections`` only, when given) applied."""
    from dc003.errors import Dc003Error
    from dc003.params.profiles import load_profile

    overrides = load_profile(profile).overrides
    if sections is not None:
        overrides = {k: v for k, v in overrides.items() if k.split(".", 1)[0] in sections}
    try:
        return with_overrides(params, overrides)
    except KeyError as exc:
        raise Dc003Error(f"{os.fspath(profile)}: overrides: {exc.args[0]}") from None


def dataset_profile(dataset_dir: str | os.PathLike[str]) -> str | None:
    """The params profile the dataset stage chose for this dataset (its manifest's ``params_profile``)."""
    from dc003.io import read_json

    manifest = Path(dataset_dir) / "manifest.json"
    if not manifest.is_file():
        return None
    value = read_json(manifest).get("params_profile")
    return str(value) if value else None
