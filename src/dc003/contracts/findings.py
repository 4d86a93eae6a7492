"""A lint finding: severity, the key paths involved, one line of explanation."""

from __future__ import annotations

from typing import Literal

from dc003.contracts.base import Declared

Severity = Literal["error", "warning"]


class Finding(Declared):
    severity: Severity
    contract: str  # the file the key paths belong to, e.g. contracts/dc003.yaml
    paths: list[str]
    message: str

    def line(self) -> str:
        return f"{self.severity}: {self.contract}: {', '.join(self.paths)}: {self.message}"
