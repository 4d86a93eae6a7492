"""The contracts as typed declarations: loading, linting, diffing."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dc003.contracts.dc002 import Dc002Contract
    from dc003.contracts.dc003 import Dc003Contract

DC003_PATH = Path("contracts/dc003.yaml")
DC002_PATH = Path("contracts/dc002.yaml")


def load_dc003(path: str | os.PathLike[str] = DC003_PATH) -> Dc003Contract:
    from dc003.contracts.dc003 import Dc003Contract
    from dc003.contracts.loading import load_model

    return load_model(Dc003Contract, path)


def load_dc002(path: str | os.PathLike[str] = DC002_PATH) -> Dc002Contract:
    from dc003.contracts.dc002 import Dc002Contract
    from dc003.contracts.loading import load_model

    return load_model(Dc002Contract, path)
