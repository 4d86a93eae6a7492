"""params.yaml, read a section at a time. Every section's model lives in the module of the area that
reads it (:data:`SECTIONS`); a pipeline stage loads only the sections it declares (:func:`load_sections`),
so it imports only their models, and its dvc.yaml deps list only those files. The whole file as one model
is :class:`dc003.params.full.Params` (``dc003 params check``)."""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

PARAMS_PATH = Path("params.yaml")

# section -> "module:attribute" of its model (``seed`` is a plain non-negative integer)
SECTIONS: dict[str, str] = {
    "seed": "dc003.params.common:Seed",
    "paths": "dc003.params.common:PathsParams",
    "data": "dc003.params.data:DataParams",
    "dataset": "dc003.params.data:DatasetParams",
    "text_embed": "dc003.params.text:TextEmbedParams",
    "model": "dc003.params.train:ModelParams",
    "phase_1": "dc003.params.train:Phase1Params",
    "phase_2": "dc003.params.train:Phase2Params",
    "phase_3": "dc003.params.train:Phase3Params",
    "phase_4": "dc003.params.train:Phase4Params",
    "train": "dc003.params.train:TrainParams",
    "evaluate": "dc003.params.evaluate:EvaluateParams",
    "serving": "dc003.params.deploy:ServingParams",
    "export": "dc003.params.deploy:ExportParams",
    "bench": "dc003.params.deploy:BenchParams",
    "serve": "dc003.params.serve:ServeParams",
    "update": "dc003.params.update:UpdateParams",
}


def section_module(section: str) -> str:
    """The module that holds ``section``'s model (what a stage reading it depends on)."""
    return SECTIONS[section].split(":", 1)[0]


def section_model(section: str) -> Any:
    """The model of ``section`` (imports its module only)."""
    module, attribute = SECTIONS[section].split(":", 1)
    return getattr(importlib.import_module(module), attribute)


def override(data: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """``data`` (params as plain data) with dotted-key overrides set in place; KeyError on an unknown key."""
    for dotted, value in overrides.items():
        node = data
        *parents, leaf = dotted.split(".")
        for key in parents:
            if not isinstance(node, dict) or key not in node:
                raise KeyError(f"unknown params key {dotted!r}")
            node = node[key]
        if not isinstance(node, dict) or leaf not in node:
            raise KeyError(f"unknown params key {dotted!r}")
        node[leaf] = value
    return data


def apply_profile_data(
    data: dict[str, Any], profile: str | os.PathLike[str], sections: tuple[str, ...] | None = None
) -> dict[str, Any]:
    """``data`` with a params profile's overrides (of ``sections`` only, when given) set; one clear error
    naming the profile file when an override names no params key."""
    from dc003.errors import Dc003Error

    try:
        return override(data, profile_overrides(profile, sections))
    except KeyError as exc:
        raise Dc003Error(f"{os.fspath(profile)}: overrides: {exc.args[0]}") from None


def profile_overrides(
    profile: str | os.PathLike[str], sections: tuple[str, ...] | None = None
) -> dict[str, Any]:
    """A params profile's overrides (of ``sections`` only, when given)."""
    from dc003.params.profiles import load_profile

    overrides = load_profile(profile).overrides
    if sections is not None:
        overrides = {k: v for k, v in overrides.items() if k.split(".", 1)[0] in sections}
    return overrides


class SectionView:
    """The params a stage declared it reads, and nothing else.

    A stage calls ``load_sections(path, ("seed", "phase_2"))``; touching any other section raises, so
    the ``params:`` list of its dvc.yaml stage (checked by tests/test_dvc_graph.py) cannot silently fall
    behind what the code reads. Without that, a knob could change results without re-running the stage.
    """

    def __init__(self, params: Any, sections: tuple[str, ...], source: str) -> None:
        unknown = [s for s in sections if s not in SECTIONS]
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
    """The stage's declared sections of ``path``, validated by their own models only; with ``profile`` (a
    params/*.yaml profile file, as the dataset manifest records it: :func:`dataset_profile`), its overrides
    of those sections applied. A top-level key that is no section is an error in every stage."""
    from pydantic import create_model

    from dc003.contracts.base import Declared
    from dc003.contracts.loading import display_path, read_yaml, validate_data
    from dc003.errors import Dc003Error

    name = display_path(path)
    data = read_yaml(path)
    if isinstance(data, dict):
        unknown = [k for k in data if k not in SECTIONS]
        if unknown:
            raise Dc003Error(f"{name}: {unknown[0]}: unknown params section (allowed: {', '.join(SECTIONS)})")
        data = {k: v for k, v in data.items() if k in sections}
        if profile is not None:
            data = apply_profile_data(data, profile, sections)
    fields: dict[str, Any] = {}
    for section in sections:
        if section not in SECTIONS:
            raise KeyError(f"unknown params sections {[section]}")
        fields[section] = (section_model(section), ...)
    model = create_model("StageParams", __base__=Declared, **fields)
    view = SectionView(validate_data(model, data, name), sections, name)
    view.profile = profile
    return view


def dataset_profile(dataset_dir: str | os.PathLike[str]) -> str | None:
    """The params profile the dataset stage chose for this dataset (its manifest's ``params_profile``)."""
    from dc003.io import read_json

    manifest = Path(dataset_dir) / "manifest.json"
    if not manifest.is_file():
        return None
    value = read_json(manifest).get("params_profile")
    return str(value) if value else None
