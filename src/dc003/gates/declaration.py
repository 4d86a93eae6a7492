"""Typed form of ``gates/*.yaml``: which contract requirements are asserted, against which measured value."""

from __future__ import annotations

import os
from typing import Literal

from pydantic import Field, model_validator

from dc003.contracts.base import Declared

GateKind = Literal["threshold", "range", "check", "all_of"]


class Source(Declared):
    """Where a measuring stage writes its values: a contract artifact or a file under a params path."""

    contract_artifact: str | None = None
    params_dir: str | None = None
    file: str | None = None

    @model_validator(mode="after")
    def _one_way(self) -> Source:
        if (self.contract_artifact is None) == (self.params_dir is None or self.file is None):
            raise ValueError("give either contract_artifact, or params_dir and file")
        return self


class GateSpec(Declared):
    name: str = Field(pattern=r"^[a-z0-9_]+$")
    group: str
    kind: GateKind
    contract: str  # key path in contracts/dc003.yaml
    observed: str | None = None  # "<source>:<key path>"
    unit: Literal["", "%", "ms", "s", "KB", "MB", "GB", "/s"] = ""
    op: Literal["<", "<=", ">", ">="] | None = None  # for a contract value that is a plain number
    requires: Literal["cuda"] | None = None
    all_of: list[str] = Field(default_factory=list)
    note: str | None = None

    @model_validator(mode="after")
    def _shape(self) -> GateSpec:
        if self.kind == "all_of":
            if not self.all_of or self.observed is not None:
                raise ValueError("an all_of gate lists its gates and has no observed value")
        elif self.observed is None or ":" not in self.observed:
            raise ValueError("observed must be '<source>:<key path>'")
        return self

    @property
    def source(self) -> str:
        assert self.observed is not None
        return self.observed.split(":", 1)[0]

    @property
    def key(self) -> str:
        assert self.observed is not None
        return self.observed.split(":", 1)[1]


class GatesDeclaration(Declared):
    sources: dict[str, Source]
    gates: list[GateSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _references(self) -> GatesDeclaration:
        names = [g.name for g in self.gates]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"gate names must be unique (repeated: {', '.join(dupes)})")
        for gate in self.gates:
            if gate.kind != "all_of" and gate.source not in self.sources:
                raise ValueError(f"gate {gate.name!r} reads unknown source {gate.source!r}")
            unknown = [n for n in gate.all_of if n not in names]
            if unknown:
                raise ValueError(f"gate {gate.name!r} lists unknown gates {unknown}")
        return self


def load_declaration(path: str | os.PathLike[str]) -> GatesDeclaration:
    from dc003.contracts.loading import load_model

    return load_model(GatesDeclaration, path)
