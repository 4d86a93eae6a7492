"""`dc003 data ...`: the DC-002 dataset checks on demand."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dc003.cli._common import guarded, new_app, print_json

app = new_app("The DC-002 dataset: validate a dataset directory against contracts/dc002.yaml.")


@app.command("validate")
@guarded
def validate(
    dataset_dir: Annotated[Path, typer.Argument(help="A DC-002 dataset directory (e.g. data/dataset).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    docs: Annotated[
        Path | None, typer.Option("--docs", help="Also write Great Expectations Data Docs here.")
    ] = None,
) -> None:
    """Run the Pandera + Great Expectations checks of the validate stage. Exits 1 on a contract breach."""
    from dc003.data.validation.report import check_dataset, raise_on_errors

    summary = check_dataset(dataset_dir, docs)
    if as_json:
        print_json(summary)
    else:
        c = summary["counts"]
        typer.echo(
            f"{summary['dataset_dir']}: {c['rules']} rules on {c['frames']} frames: "
            f"{c['errors']} error(s), {c['warnings']} warning(s)"
        )
    raise_on_errors(summary)
