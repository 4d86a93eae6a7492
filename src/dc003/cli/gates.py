"""`dc003 gates check`: the contract's thresholds against measured values."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dc003.cli._common import guarded, new_app, print_json

app = new_app("Assert the contract's quality, size, latency and deployment gates on measured values.")


@app.command("check")
@guarded
def check(
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    markdown: Annotated[bool, typer.Option("--markdown", help="Print a pull-request comment.")] = False,
    declaration: Annotated[Path, typer.Option("--gates", help="Gates declaration.")] = Path(
        "gates/promotion.yaml"
    ),
    contract: Annotated[Path, typer.Option("--dc003", help="DC-003 contract.")] = Path(
        "contracts/dc003.yaml"
    ),
    params: Annotated[Path, typer.Option("--params", help="params.yaml (for paths).")] = Path("params.yaml"),
    out: Annotated[Path | None, typer.Option("--out", help="Also write the JSON report here.")] = None,
    no_fail: Annotated[bool, typer.Option("--no-fail", help="Exit 0 even when a gate fails.")] = False,
) -> None:
    """Compare every declared gate; exit 1 when any applicable gate fails."""
    from dc003.gates import run_gates
    from dc003.gates.render import print_table, to_markdown
    from dc003.io import write_json

    report = run_gates(declaration, contract, params)
    if out is not None:
        write_json(out, report.model_dump(mode="json"))
    if as_json:
        print_json(report.model_dump(mode="json"))
    elif markdown:
        typer.echo(to_markdown(report), nl=False)
    else:
        print_table(report)
    if not report.passed and not no_fail:
        raise typer.Exit(1)
