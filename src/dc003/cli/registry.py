"""`dc003 registry list`: the promoted model versions."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dc003.cli._common import guarded, new_app, print_json

app = new_app("Inspect the model registry (promoted versions).")


@app.command("list")
@guarded
def list_(
    registry: Annotated[Path, typer.Option("--registry", help="Registry folder.")] = Path("registry"),
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List promoted versions, newest last."""
    from dc003.registry import list_versions

    versions = list_versions(registry)
    if as_json:
        print_json([v.model_dump() for v in versions])
        return
    if not versions:
        typer.echo(f"{registry}: no promoted versions")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{registry}: {len(versions)} version(s)")
    for col in ("version", "created", "git commit", "contract", "recall@50"):
        table.add_column(col)
    for v in versions:
        recall = "—" if v.recall_50 is None else f"{v.recall_50:.4f}"
        table.add_row(v.version, v.created, v.git_commit[:10], v.contract_version, recall)
    Console().print(table)


@app.command("promote")
@guarded
def promote_(
    registry: Annotated[Path, typer.Option("--registry", help="Registry folder.")] = Path("registry"),
    as_json: Annotated[bool, typer.Option("--json", help="Print the decision as JSON.")] = False,
) -> None:
    """Register the contract's artifacts as a new version if every gate passes; exit 1 on a refusal."""
    from dc003.registry import promote_project

    decision = promote_project(Path.cwd(), registry)
    if as_json:
        print_json(decision.model_dump(mode="json"))
    else:
        typer.echo(decision.message, err=not decision.promoted)
    if not decision.promoted:
        raise typer.Exit(1)
