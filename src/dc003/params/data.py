"""params.yaml sections `data` (where raw data comes from) and `dataset` (the DC-002 build knobs)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from dc003.params.common import Section, contract_ref


class DataParams(Section):
    source: Literal["synthetic", "kaggle"]
    scale: Literal["tiny", "small", "default", "full"]  # synthetic only
    kaggle_dir: str = Field(min_length=1)  # kaggle only: holds the three files as CSV or Parquet


class DatasetParams(Section):
    max_history: int = contract_ref("dc003:user_tower.sequence_encoder.max_sequence_length", gt=0)
    train_window_days: int = contract_ref("dc002:splits.train_window_days", gt=0)
    popularity_window_days: int = contract_ref("dc002:features.items.popularity_score.window_days", gt=0)
