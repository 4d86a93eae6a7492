"""`dc003 params ...`: validate params.yaml against the contract."""

from __future__ import annotations

from typing import Annotated

import typer

from dc003.cli._common import guarded, new_app

app = new_app("Validate params.yaml and list where it deviates from the contract.")
