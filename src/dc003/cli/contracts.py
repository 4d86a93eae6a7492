"""`dc003 contracts ...`: lint and diff the contract declarations."""

from __future__ import annotations

from typing import Annotated

import typer

from dc003.cli._common import guarded, new_app

app = new_app("Lint and diff the contracts (contracts/dc003.yaml, contracts/dc002.yaml).")
