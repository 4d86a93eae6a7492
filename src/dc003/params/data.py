"""params.yaml sections `data` (where raw data comes from) and `dataset` (the DC-002 build knobs)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from dc003.params.common import Section


class DataParams(Section):
    source: Literal["synthetic", "kaggle"]
    scale: Literal["tiny", "small", "default", "full"]
    kaggle_dir: str = Field(min_length=1)


class DatasetParams(Section):
    max_history: int = Field(gt=0)
