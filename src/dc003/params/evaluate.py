"""params.yaml section `evaluate`."""

from __future__ import annotations

from pydantic import Field

from dc003.params.common import Section


class EvaluateParams(Section):
    exclude_purchased: bool
    bootstrap_samples: int = Field(gt=0)
