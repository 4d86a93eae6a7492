"""Lint both contracts: DC-003 on its own, DC-002 on its own and against DC-003."""

from __future__ import annotations

import os
from pathlib import Path

from dc003.contracts.findings import Finding


def lint_contracts(dc003_path: str | os.PathLike[str], dc002_path: str | os.PathLike[str]) -> list[Finding]:
    from dc003.contracts import load_dc002, load_dc003
    from dc003.contracts.lint import lint_dc003

    dc003 = load_dc003(dc003_path)
    findings = lint_dc003(dc003)
    if Path(dc002_path).exists():
        from dc003.contracts.dc002_lint import lint_dc002

        findings.extend(lint_dc002(load_dc002(dc002_path), dc003))
    return findings
