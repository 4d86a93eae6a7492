"""What every command shares: one-line errors with a non-zero exit, and output helpers."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

import typer

from dc003.errors import Dc003Error

P = ParamSpec("P")
R = TypeVar("R")


def guarded(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn a Dc003Error into its message on stderr and the error's exit code (no traceback)."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except Dc003Error as exc:
            for line in str(exc).splitlines() or ["failed"]:
                typer.echo(f"error: {line}", err=True)
            raise typer.Exit(exc.exit_code) from None

    return wrapper


def print_json(obj: Any) -> None:
    from dc003.io import _json_default

    sys.stdout.write(json.dumps(obj, indent=2, default=_json_default) + "\n")


def new_app(help_text: str) -> typer.Typer:
    return typer.Typer(
        help=help_text,
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
    )
