"""params.yaml as one typed model, for ``dc003 params check`` and the scripts. A pipeline stage never loads
it: a stage reads its declared sections only (:func:`dc003.params.load_sections`), so it depends on their
models alone and a change to another section's model re-runs nothing of it."""

from __future__ import annotations

import os
from typing import Any

from dc003.contracts.base import Declared
from dc003.params import PARAMS_PATH, override
from dc003.params.common import PathsParams, Seed
from dc003.params.data import DataParams, DatasetParams
from dc003.params.deploy import BenchParams, ExportParams, ServingParams
from dc003.params.evaluate import EvaluateParams
from dc003.params.serve import ServeParams
from dc003.params.text import TextEmbedParams
from dc003.params.train import (
    ModelParams,
    Phase1Params,
    Phase2Params,
    Phase3Params,
    Phase4Params,
    TrainParams,
)
from dc003.params.update import UpdateParams


class Params(Declared):
    # the same sections, in the same order, as dc003.params.SECTIONS (tests/test_params_check.py)
    seed: Seed
    paths: PathsParams
    data: DataParams
    dataset: DatasetParams
    text_embed: TextEmbedParams
    model: ModelParams
    phase_1: Phase1Params
    phase_2: Phase2Params
    phase_3: Phase3Params
    phase_4: Phase4Params
    train: TrainParams
    evaluate: EvaluateParams
    serving: ServingParams
    export: ExportParams
    bench: BenchParams
    serve: ServeParams
    update: UpdateParams


def load_params(path: str | os.PathLike[str] = PARAMS_PATH) -> Params:
    from dc003.contracts.loading import load_model

    return load_model(Params, path)


def with_overrides(params: Params, overrides: dict[str, Any]) -> Params:
    """A copy of ``params`` with dotted-key overrides (``{"data.scale": "tiny"}``), re-validated."""
    from dc003.contracts.loading import validate_data

    return validate_data(Params, override(params.model_dump(mode="json"), overrides), "params (overrides)")


def apply_profile(
    params: Params, profile: str | os.PathLike[str], sections: tuple[str, ...] | None = None
) -> Params:
    """``params`` with a params profile's overrides (of ``sections`` only, when given) applied."""
    from dc003.contracts.loading import validate_data
    from dc003.params import apply_profile_data

    data = apply_profile_data(params.model_dump(mode="json"), profile, sections)
    return validate_data(Params, data, "params (overrides)")
