"""`dc003 plots`: `dvc plots show` with Vega, Vega-Lite and Vega-Embed inlined, so it renders offline."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dc003.cli._common import guarded


@guarded
def plots(
    targets: Annotated[
        list[str] | None, typer.Argument(help="Plots or files to show (default: every plot in dvc.yaml).")
    ] = None,
    out: Annotated[Path, typer.Option("-o", "--out", help="Directory for index.html.")] = Path("dvc_plots"),
    template: Annotated[
        Path | None,
        typer.Option(
            "--template", help="Where to cache the HTML template (default .dvc/tmp/).", show_default=False
        ),
    ] = None,
    open_browser: Annotated[bool, typer.Option("--open", help="Open the page in a browser.")] = False,
) -> None:
    """Write DVC's plots page with no network load in it (the JS libraries are inlined)."""
    from dc003.offline_plots import show

    index = show(out, targets, template=template, open_browser=open_browser)
    typer.echo(index.as_uri())
