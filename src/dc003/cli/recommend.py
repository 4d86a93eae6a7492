"""`dc003 recommend`: top-k articles for one customer from the exported artifacts alone (ONNX Runtime +
FAISS + mappings; torch is never imported). An unknown customer takes the cold-start path."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dc003.cli._common import guarded, print_json


@guarded
def recommend(
    customer: Annotated[str, typer.Option("--customer", help="customer_id (unknown ids get cold start).")],
    k: Annotated[int, typer.Option("-k", "--k", min=1, help="How many articles.")] = 50,
    artifacts: Annotated[Path, typer.Option("--artifacts", help="The export stage's directory.")] = Path(
        "artifacts"
    ),
    threads: Annotated[int, typer.Option("--threads", min=1, help="ONNX Runtime / FAISS threads.")] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Print the top-k articles (rank, article_id, name, product group, score).

    The score is the cosine plus the popularity prior the artifacts were exported with.
    """
    import dc003  # noqa: F401  (offline / no-telemetry environment before onnxruntime loads)
    from dc003.deploy import layout
    from dc003.errors import Dc003Error

    if not customer.strip():
        # an empty id is a typo or an unset shell variable, not a new customer: say so, never cold-start it
        raise Dc003Error("--customer: empty customer_id (an unknown id gets the cold-start path)")
    missing = [
        n for n in (layout.MODEL_CONFIG, layout.MAPPINGS, layout.INDEX) if not (artifacts / n).is_file()
    ]
    if missing:
        raise Dc003Error(f"{artifacts / missing[0]}: missing: run the export stage first")
    from dc003.deploy.serving import Recommender

    result = Recommender(artifacts, threads).recommend(customer, k)
    if as_json:
        print_json(
            {"customer_id": result.customer_id, "cold_start": result.cold_start, "items": result.items}
        )
        return
    from rich.console import Console
    from rich.table import Table

    path = (
        "cold start: unknown customer, features and history empty" if result.cold_start else "known customer"
    )
    table = Table(title=f"top {len(result.items)} for {customer} ({path})")
    for col in ("rank", "article_id", "prod_name", "product group", "score"):
        table.add_column(col, justify="right" if col in ("rank", "score") else "left")
    for row in result.items:
        table.add_row(
            str(row["rank"]),
            row["article_id"],
            row["prod_name"],
            row["product_group_name"] or "",
            f"{row['score']:.4f}",
        )
    Console().print(table)
