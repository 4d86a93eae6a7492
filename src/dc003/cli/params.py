"""`dc003 params ...`: validate params.yaml against the contract."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dc003.cli._common import guarded, new_app, print_json

app = new_app("Validate params.yaml and list where it deviates from the contract.")


@app.command("check")
@guarded
def check(
    params: Annotated[Path, typer.Option("--params", help="The params file to check.")] = Path("params.yaml"),
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    dc003: Annotated[Path, typer.Option("--dc003")] = Path("contracts/dc003.yaml"),
    dc002: Annotated[Path, typer.Option("--dc002")] = Path("contracts/dc002.yaml"),
) -> None:
    """Fail on type/range violations; list differences from the contract as deviations and knobs the
    contract does not describe as extensions (exit 0)."""
    from dc003.params.check import check_params

    report = check_params(params, dc003, dc002)
    if as_json:
        print_json(report.model_dump(mode="json"))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not report.deviations:
        console.print(f"{report.params_file}: valid, no deviations from the contracts")
    else:
        table = Table(
            title=f"{report.params_file}: valid, {len(report.deviations)} deviation(s) from the contracts"
        )
        for col in ("params key", "run value", "contract key", "contract value", "note"):
            table.add_column(col, overflow="fold")
        for d in report.deviations:
            contract = f"{d.contract}: {d.contract_key}"
            table.add_row(d.key, str(d.value), contract, str(d.contract_value), d.note)
        console.print(table)
    if report.extensions:
        table = Table(title=f"{len(report.extensions)} extension(s) beyond the contracts")
        for col in ("params key", "run value", "what it adds"):
            table.add_column(col, overflow="fold")
        for e in report.extensions:
            table.add_row(e.key, str(e.value), e.note)
        console.print(table)
    for prof in report.profiles:
        when = ", ".join(f"{k} {v}" for k, v in prof.applies_when.items() if v is not None)
        state = "in use by the current dataset" if prof.in_use else "not in use by the current dataset"
        table = Table(title=f"params profile {prof.file} (applies when {when}; {state})")
        for col in ("params key", "profile value"):
            table.add_column(col, overflow="fold")
        for key, value in prof.overrides.items():
            table.add_row(key, str(value))
        console.print(table)
