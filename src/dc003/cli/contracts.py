"""`dc003 contracts ...`: lint and diff the contract declarations."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dc003.cli._common import guarded, new_app, print_json

app = new_app("Lint and diff the contracts (contracts/dc003.yaml, contracts/dc002.yaml).")

Dc003Opt = Annotated[Path, typer.Option("--dc003", help="DC-003 model contract.")]
Dc002Opt = Annotated[Path, typer.Option("--dc002", help="DC-002 dataset contract.")]


@app.command("lint")
@guarded
def lint(
    as_json: Annotated[bool, typer.Option("--json", help="Print the findings as JSON.")] = False,
    dc003: Dc003Opt = Path("contracts/dc003.yaml"),
    dc002: Dc002Opt = Path("contracts/dc002.yaml"),
) -> None:
    """Check both contracts for internal consistency. Exits 1 when there is an error finding."""
    from dc003.contracts.lint_all import lint_contracts

    findings = lint_contracts(dc003, dc002)
    errors = sum(f.severity == "error" for f in findings)
    if as_json:
        print_json(
            {
                "passed": errors == 0,
                "counts": {"errors": errors, "warnings": len(findings) - errors},
                "findings": [
                    f.model_dump(include={"severity", "contract", "paths", "message"}) for f in findings
                ],
            }
        )
    else:
        from rich.console import Console
        from rich.table import Table

        table = Table(title="contract lint", show_lines=False)
        for col in ("severity", "contract", "key paths", "finding"):
            table.add_column(col, overflow="fold")
        for f in findings:
            style = "red" if f.severity == "error" else "yellow"
            table.add_row(f"[{style}]{f.severity}[/]", f.contract, "\n".join(f.paths), f.message)
        console = Console()
        console.print(table)
        console.print(f"{errors} error(s), {len(findings) - errors} warning(s)")
    if any(f.severity == "error" for f in findings):
        raise typer.Exit(1)


@app.command("diff")
@guarded
def diff(
    base: Annotated[str, typer.Argument(help="Git ref to compare the working tree against (e.g. main).")],
    markdown: Annotated[bool, typer.Option("--markdown", help="Print a pull-request comment.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the diff as JSON.")] = False,
) -> None:
    """What changed in the contracts since BASE, breaking or not, and whether the version bump fits.

    Exits 1 when a breaking change comes without a major version bump."""
    from dc003.contracts.diff import diff_contracts, to_markdown

    result = diff_contracts(base)
    if as_json:
        print_json(result.model_dump(mode="json"))
    elif markdown:
        typer.echo(to_markdown(result), nl=False)
    else:
        from rich.console import Console
        from rich.table import Table

        console = Console()
        for f in result.files:
            table = Table(title=f"{f.file}: {f.base_version} -> {f.new_version} ({f.verdict})")
            for col in ("kind", "key", "old", "new", "why"):
                table.add_column(col, overflow="fold")
            for c in f.changes:
                style = "red" if c.kind == "breaking" else "green"
                table.add_row(f"[{style}]{c.kind}[/]", c.path, str(c.old), str(c.new), c.reason)
            console.print(table)
    if not result.ok:
        raise typer.Exit(1)
