"""The `dc003` command line. Sub-command modules import only typer at module level, so `dc003 --help`
stays instant; torch, pandas, great_expectations and onnxruntime are imported inside the commands."""

from __future__ import annotations

from dc003.cli import contracts, gates, params, plots, recommend, registry, serve, update
from dc003.cli import data as data_cli
from dc003.cli._common import new_app

app = new_app("dc003: contract validation and the reproducible DC-003 two-tower pipeline.")
app.add_typer(contracts.app, name="contracts")
app.add_typer(params.app, name="params")
app.add_typer(gates.app, name="gates")
app.add_typer(registry.app, name="registry")
app.add_typer(data_cli.app, name="data")
app.command("recommend")(recommend.recommend)
app.command("plots")(plots.plots)
app.command("serve")(serve.serve)
app.command("update")(update.update)


def main() -> None:
    app()
