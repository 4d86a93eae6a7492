"""`dc003 serve`: the HTTP service (:mod:`dc003.serve.app`) on uvicorn, with ``--workers`` replicas."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from dc003.cli._common import guarded

REDIS_ENV = "DC003_REDIS_URL"


@guarded
def serve(
    artifacts: Annotated[
        Path | None,
        typer.Option("--artifacts", help="Serve this export folder (default: the registry's prod version)."),
    ] = None,
    project: Annotated[Path, typer.Option("--project", help="The project (git top level).")] = Path("."),
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535)] = 8000,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Worker processes (replicas).")] = 1,
    redis_url: Annotated[
        str | None,
        typer.Option("--redis-url", envvar=REDIS_ENV, help="Redis for the embedding cache (none: no cache)."),
    ] = None,
    threads: Annotated[int, typer.Option("--threads", min=1, help="ONNX Runtime / FAISS threads.")] = 1,
    params: Annotated[Path, typer.Option("--params", help="params.yaml (section serve).")] = Path(
        "params.yaml"
    ),
    embed_items: Annotated[
        bool, typer.Option("--embed-items/--no-embed-items", help="Load MiniLM (ONNX) for POST /embed/items.")
    ] = True,
) -> None:
    """Serve recommendations over HTTP: GET/POST /recommend, POST /embed/items, GET /healthz, GET /version.

    Serves the newest version in the registry's prod stage, or the --artifacts folder; a new promoted
    version, a re-export or a repointed --artifacts symlink is picked up without dropping requests.
    """
    import dc003  # noqa: F401  (offline / no-telemetry environment before onnxruntime loads)
    from dc003.params import load_sections
    from dc003.serve import served
    from dc003.serve.app import SETTINGS_ENV, Settings

    loaded = load_sections(params, ("paths", "serve"))
    policy = loaded.serve
    served.resolve(project, artifacts)  # one clear error before any worker starts
    text_graph = model_dir = None
    if embed_items:
        from dc003.serve.text_encoder import ensure_encoder

        graph, model = ensure_encoder(project / loaded.paths.text_cache_dir)
        text_graph, model_dir = str(graph.resolve()), str(model)
    settings = Settings(
        project=str(project.resolve()),
        artifacts=str(artifacts.absolute()) if artifacts is not None else None,
        redis_url=redis_url,
        threads=threads,
        text_graph=text_graph,
        text_model_dir=model_dir,
        policy=policy,
    )
    if redis_url:
        from dc003.serve.cache import EmbeddingCache

        EmbeddingCache.connect(redis_url, policy.cache_ttl_s)  # unreachable: one error line, now
    else:
        typer.echo(
            f"dc003 serve: no Redis URL (--redis-url / {REDIS_ENV}): serving without a cache", err=True
        )
    os.environ[SETTINGS_ENV] = settings.model_dump_json()
    import uvicorn

    uvicorn.run(
        "dc003.serve.app:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=10,
    )
