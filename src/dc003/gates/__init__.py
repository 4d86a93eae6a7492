"""Gates: the contract's thresholds asserted on measured values before anything is promoted."""

from __future__ import annotations

import os
from pathlib import Path

from dc003.gates.check import GatesReport

DECLARATION = Path("gates/promotion.yaml")


def run_gates(
    declaration: str | os.PathLike[str] = DECLARATION,
    contract_path: str | os.PathLike[str] = "contracts/dc003.yaml",
    params_path: str | os.PathLike[str] = "params.yaml",
    root: Path | None = None,
) -> GatesReport:
    """Load the declaration, the contract and the paths, and compare every gate."""
    from dc003.contracts import load_dc003
    from dc003.contracts.loading import read_yaml, validate_data
    from dc003.gates.check import evaluate_gates, source_paths
    from dc003.gates.declaration import load_declaration
    from dc003.params.common import PathsParams

    root = root or Path.cwd()
    decl = load_declaration(declaration)
    contract = load_dc003(contract_path)
    raw = read_yaml(params_path)
    # Only the paths section is needed (and must not depend on the rest of params being loadable).
    paths = validate_data(PathsParams, (raw or {}).get("paths"), f"{params_path}: paths")
    return evaluate_gates(decl, contract, source_paths(decl, contract, paths, root), root=root)
