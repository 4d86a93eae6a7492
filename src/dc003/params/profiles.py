"""Declared params profiles: a file under ``params/`` that overrides some params.yaml knobs for a kind of
data, applied automatically where it says it applies (``params/kaggle-small.yaml``: real data with
few customers, where a phase otherwise gets a few dozen optimiser steps; ``params/full-scale.yaml``: H&M
size, where a 2-core machine needs budgets on the examples each phase sees).

The dataset stage decides: from its raw inputs (``source.json``'s source, the customers file's rows) it
picks the first profile whose ``applies_when`` holds and records it in the dataset manifest. Every later
stage reads that record from the dataset (a dependency it already has) and applies the same overrides to
the sections it declared, so the choice is made once, from declared inputs, and DVC re-runs exactly the
stages whose effective params a profile edit changes (each lists the profile file under ``params:``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from dc003.contracts.base import Declared

PROFILES_DIR = Path("params")
# in the order they are tried; the first whose applies_when holds is used
PROFILE_FILES: tuple[str, ...] = ("kaggle-small.yaml", "full-scale.yaml")


class AppliesWhen(Declared):
    source: Literal["synthetic", "kaggle"] | None = Field(default=None, description="null: either source")
    # rows of the raw customers file, at most / at least (one of them at least)
    max_customers: int | None = Field(default=None, gt=0)
    min_customers: int | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _bounded(self) -> AppliesWhen:
        if self.max_customers is None and self.min_customers is None:
            raise ValueError("set max_customers or min_customers (params.yaml is the profile for any data)")
        return self

    def holds(self, source: str, n_customers: int) -> bool:
        return (
            (self.source is None or self.source == source)
            and (self.max_customers is None or n_customers <= self.max_customers)
            and (self.min_customers is None or n_customers >= self.min_customers)
        )


class Profile(Declared):
    description: str = Field(min_length=1)
    applies_when: AppliesWhen
    overrides: dict[str, Any] = Field(min_length=1, description="dotted params.yaml keys -> values")

    def sections(self) -> set[str]:
        return {key.split(".", 1)[0] for key in self.overrides}


def load_profile(path: str | os.PathLike[str]) -> Profile:
    from dc003.contracts.loading import load_model

    return load_model(Profile, path)


def profile_paths(root: str | os.PathLike[str] = ".") -> list[Path]:
    return [Path(root) / PROFILES_DIR / name for name in PROFILE_FILES]


def choose_profile(source: str, n_customers: int, root: str | os.PathLike[str] = ".") -> str | None:
    """The profile file (relative path) whose ``applies_when`` holds for these raw inputs, or None."""
    for path in profile_paths(root):
        if not path.is_file():
            continue
        if load_profile(path).applies_when.holds(source, n_customers):
            return (PROFILES_DIR / path.name).as_posix()
    return None
