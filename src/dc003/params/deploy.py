"""params.yaml sections `export` and `bench`."""

from __future__ import annotations

from pydantic import Field

from dc003.params.common import Section


class ExportParams(Section):
    opset: int = Field(ge=17)
    fp16: bool


class BenchParams(Section):
    warmup: int = Field(ge=0)
    repetitions: int = Field(gt=0)
    threads: int = Field(gt=0)
