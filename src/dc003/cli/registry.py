"""`dc003 registry list / promote`: the GTO model registry (git tags on the dvc.yaml artifact)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dc003.cli._common import guarded, new_app, print_json

app = new_app("The model registry: GTO versions and stages of the dvc.yaml model artifact.")


@app.command("list")
@guarded
def list_(
    repo: Annotated[Path, typer.Option("--repo", help="The project (git top level).")] = Path("."),
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    history: Annotated[bool, typer.Option("--history", help="Also print `gto history`.")] = False,
) -> None:
    """`gto show` (latest version and stages of every artifact), then the model's versions, newest first."""
    import gto.api

    from dc003.registry import MODEL_ARTIFACT, gto_errors, require_git_root, versions

    require_git_root(repo)
    with gto_errors("show"):
        overview = gto.api.show(str(repo))
        events = gto.api.history(str(repo), MODEL_ARTIFACT) if history else []
    events = [{**e, "timestamp": str(e["timestamp"])} for e in events]
    found = versions(repo)
    if as_json:
        payload: dict[str, object] = {"gto_show": overview, "versions": found}
        if history:
            payload["history"] = events
        print_json(payload)
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not overview:
        typer.echo(f"{repo.resolve()}: no GTO artifact registered (gto show is empty)")
        return
    stages = sorted({s for d in overview.values() for s in d["stage"]})
    table = Table(title="gto show")
    for col in ("name", "latest", *(f"#{s}" for s in stages)):
        table.add_column(col)
    for name, d in sorted(overview.items()):
        table.add_row(name, d["version"] or "—", *(d["stage"].get(s) or "—" for s in stages))
    console.print(table)
    if found:
        table = Table(title=f"{MODEL_ARTIFACT}: {len(found)} version(s)")
        for col in ("version", "stages", "commit", "created", "contract", "artifacts md5", "recall@50"):
            table.add_column(col)
        for v in found:
            table.add_row(
                v["version"],
                ", ".join(v["stages"]) or "—",
                v["commit"][:10],
                v["created_at"],
                v.get("contract", "—"),
                v.get("artifacts_md5", "—"),
                v.get("metric_recall_50", "—"),
            )
        console.print(table)
    if history:
        table = Table(title=f"gto history {MODEL_ARTIFACT}")
        for col in ("timestamp", "event", "version", "stage", "commit"):
            table.add_column(col)
        for e in events:
            table.add_row(str(e["timestamp"]), e["event"], e["version"], e["stage"] or "", e["commit"][:10])
        console.print(table)


@app.command("promote")
@guarded
def promote_(
    stage: Annotated[str, typer.Option("--stage", help="GTO stage to assign.")] = "prod",
    as_json: Annotated[bool, typer.Option("--json", help="Print the decision as JSON.")] = False,
) -> None:
    """Register the dvc.yaml model artifact with GTO if every gate passes; exit 1 on a refusal."""
    from dc003.registry import promote_project

    decision = promote_project(Path.cwd(), stage=stage)
    if as_json:
        print_json(decision.model_dump(mode="json"))
    else:
        typer.echo(decision.message, err=not decision.promoted)
    if not decision.promoted:
        raise typer.Exit(1)
