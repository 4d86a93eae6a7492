"""The one error type the CLI and the stages turn into a single clear line and a non-zero exit."""

from __future__ import annotations


class Dc003Error(Exception):
    """A user-facing failure: bad input, a contract breach, a failed gate.

    The message is one line naming the file, the field (key path or column), the row where there
    is one, and the rule that was broken, e.g.
    ``contracts/dc003.yaml: phases.phase_2.infonce.temperature: must be > 0 (got -0.1)``.
    """

    def __init__(self, message: str, *, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def located(file: str, field: str, rule: str, *, row: int | None = None) -> str:
    """Format the house one-line error: ``file: field[: row N]: rule``."""
    where = f"{file}: {field}"
    if row is not None:
        where += f": row {row}"
    return f"{where}: {rule}"


def exception_summary(exc: BaseException, limit: int = 160) -> str:
    """A library's exception as ``Type: first sentence`` on one line (some messages span a paragraph)."""
    text = " ".join(str(exc).split()).split(". ")[0].rstrip(".")
    return f"{type(exc).__name__}: {text[:limit]}" if text else type(exc).__name__
