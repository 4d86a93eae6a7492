"""`dc003 update --since DATE`: the daily incremental update (:mod:`dc003.update`), then its promotion."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dc003.cli._common import guarded


@guarded
def update(
    since: Annotated[
        str, typer.Option("--since", help="First day (YYYY-MM-DD) of the train split's days to update on.")
    ],
    params_file: Annotated[Path, typer.Option("--params", help="params.yaml of the project.")] = Path(
        "params.yaml"
    ),
    promote: Annotated[
        bool, typer.Option("--promote/--no-promote", help="Promote when every gate passes (GTO).")
    ] = True,
) -> None:
    """Warm-start from the promoted model (else checkpoints/best_model.pt), fine-tune on the days from
    --since, evaluate, export, bench and gate into ${paths.update_dir}; promote only if every gate passes.
    Exit 1 on a refused promotion (no tag), as `dc003 registry promote`."""
    from dc003.errors import Dc003Error
    from dc003.params import dataset_profile
    from dc003.params.full import apply_profile, load_params
    from dc003.update.promote import promote_update
    from dc003.update.run import parse_since, run_update, summary_lines

    day = parse_since(since)
    root = Path.cwd()
    params = load_params(params_file)
    profile = dataset_profile(root / params.paths.dataset_dir)
    if profile is not None:
        params = apply_profile(params, profile)
    report = run_update(root, params, day)
    for line in summary_lines(report):
        typer.echo(line)
    if not promote:
        return
    decision = promote_update(root, params.paths)
    typer.echo(f"update: {decision.message}", err=not decision.promoted)
    if not decision.promoted:
        raise Dc003Error("promotion refused (the update's folder stays; the served version is unchanged)")
