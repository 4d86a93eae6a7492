"""params.yaml section `update`: the daily incremental update (``dc003 update``, stages update and
update_promote). Nothing here is in the contract (it describes a full training run), so the knobs that
define what an update is are listed by ``dc003 params check`` as extensions."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import Field

from dc003.params.common import extension
from dc003.params.train import PhaseParams

# all: both towers fine-tune (every item embedding moves: the whole catalogue is re-embedded);
# user_tower: the item tower is frozen (weights and batch-norm statistics), so an item's embedding changes
# only when its features do (new sales, price, popularity): the index rows of the other items stay exact
Trainable = Literal["all", "user_tower"]


class UpdateParams(PhaseParams):
    since: dt.date | None = extension(
        "the incremental update trains on the train split's interactions from this day on (null: the "
        "update stage records that no update was asked for and changes nothing)"
    )
    window_days: int = extension(
        "replay: the update also trains on the window_days train-split days before `since`", ge=0
    )
    trainable: Trainable = extension(
        "which tower the update fine-tunes (all | user_tower: the item tower and its index rows stay)"
    )
    # the objective is phase 2's (InfoNCE with in-batch and shared random negatives, logQ correction, the
    # history-only term); no distillation teacher (an ALS fit on every purchase is a full-retrain cost)
    temperature: float = Field(gt=0)
    label_smoothing: float = Field(ge=0, lt=1)
    random_negatives: int = Field(ge=0)
    popularity_weight: float = Field(ge=0)
    history_weight: float = Field(ge=0)
    history_dropout: float = Field(ge=0, lt=1)  # as phase 2's: baskets shown as a cold customer's
