"""params.yaml section `evaluate`: how the test split is scored and how the baselines are built."""

from __future__ import annotations

from pydantic import Field

from dc003.params.common import Section


class AlsParams(Section):
    """Implicit-feedback ALS (``implicit``): fixed seed, one thread, so a re-run gives the same lists."""

    factors: int = Field(gt=0)
    iterations: int = Field(gt=0)
    regularization: float = Field(ge=0)
    alpha: float = Field(gt=0)  # confidence = alpha x purchase count


class EvaluateParams(Section):
    # Never recommend an item the user bought before the test cutoff. Off by default: repurchases are
    # common in fashion data (the repurchase baseline lives on them), and the contract's recall is over
    # everything bought in the test week.
    exclude_purchased: bool
    bootstrap_samples: int = Field(gt=0)
    confidence: float = Field(gt=0, lt=1)  # of every bootstrap interval
    max_k: int = Field(ge=50)  # the recall@k curve runs k = 1 .. max_k
    # buyers of a week that the evaluation scores (test, and the serving sweep's val and test): 0 = all,
    # else a seeded uniform sample of this many, the same users for every model and baseline
    max_users: int = Field(ge=0)
    trending_weeks: int = Field(gt=0)
    trending_half_life_days: float = Field(gt=0)
    repurchase_half_life_days: float = Field(gt=0)
    als: AlsParams
