"""The HTTP app of ``dc003 serve`` (FastAPI on uvicorn): recommendations, new-article embeddings,
health and version, over one loaded model (:mod:`dc003.serve.served`) and an optional shared Redis cache
(:mod:`dc003.serve.cache`). No torch: ONNX Runtime, FAISS, numpy, the ``tokenizers`` library.

``GET /recommend?customer_id=&k=`` / ``POST /recommend`` ``{"customer_ids": [...], "k": 50}``
    Top-k articles. An unknown customer takes the cold-start path (``cold_start: true``), not an error.
    Each answer says where its user embedding came from (``redis``, ``tower`` or ``cold``) and carries
    the version key of the model that answered.
``POST /embed/items`` ``{"items": [{"article_id", "categorical": {...}, "numerical": {...}, "text": {...}}]}``
    Item-tower embeddings of new articles (MiniLM on their texts first).
``GET /healthz``, ``GET /version``
    Liveness with the cache counters of this process; what is served (model version or ``unregistered``,
    contract version, artifacts md5, data digest).

Every error is a JSON object ``{"error": "...", "detail": ...}`` with a 4xx status (malformed or
out-of-range parameters, a missing parameter, an oversized batch or body, a body that is not UTF-8 JSON);
an unexpected failure is a 500 with ``{"error": "internal error"}``, never a traceback.

Each worker process builds the app from the JSON settings in ``DC003_SERVE_SETTINGS`` (``dc003 serve``
writes them), so uvicorn's ``--workers`` replicas share one configuration.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictStr
from starlette.exceptions import HTTPException

from dc003.params.serve import ServeParams
from dc003.serve import served as served_mod
from dc003.serve.cache import EmbeddingCache

SETTINGS_ENV = "DC003_SERVE_SETTINGS"
MAX_ID_LENGTH = 256
log = logging.getLogger("dc003.serve")


class Settings(BaseModel):
    """What a worker needs to build the app (``dc003 serve`` fills it from its options and params)."""

    model_config = ConfigDict(extra="forbid")

    project: str
    artifacts: str | None = None
    redis_url: str | None = None
    threads: int = 1
    text_graph: str | None = None  # the MiniLM ONNX graph (None: POST /embed/items answers 503)
    text_model_dir: str | None = None
    policy: ServeParams  # params.yaml section serve


CustomerId = Annotated[StrictStr, Field(min_length=1, max_length=MAX_ID_LENGTH)]


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    customer_ids: list[CustomerId]
    k: int = 50


class NewItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    article_id: Annotated[StrictStr, Field(min_length=1, max_length=MAX_ID_LENGTH)]
    categorical: dict[str, StrictStr | None] = {}
    numerical: dict[str, float | None] = {}
    text: dict[str, StrictStr | None] = {}


class EmbedRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[NewItem]


class ApiError(Exception):
    def __init__(self, status: int, message: str, detail: Any = None) -> None:
        super().__init__(message)
        self.status, self.message, self.detail = status, message, detail


class Service:
    """The state one worker serves from: the model holder, the cache, the limits."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.policy = policy = settings.policy
        self.cache = (
            EmbeddingCache.connect(settings.redis_url, settings.policy.cache_ttl_s)
            if settings.redis_url
            else None
        )
        encoder = None
        if settings.text_graph and settings.text_model_dir:
            from dc003.serve.text_encoder import OnnxTextEncoder

            encoder = OnnxTextEncoder(
                Path(settings.text_graph), Path(settings.text_model_dir), settings.threads
            )
        project = Path(settings.project)
        artifacts = Path(settings.artifacts) if settings.artifacts else None

        def resolve() -> served_mod.Source:
            return served_mod.resolve(project, artifacts)

        def load(source: served_mod.Source) -> served_mod.Served:
            return served_mod.load(
                source,
                cache_top_users=policy.cache_top_users,
                threads=settings.threads,
                encoder=encoder,
            )

        first = load(resolve())
        self._publish(first)
        self.holder = served_mod.Holder(first, resolve, load, policy.reload_poll_s, on_switch=self._publish)

    def _publish(self, model: served_mod.Served) -> None:
        if self.cache is not None:
            self.cache.publish(model)

    # ---------------------------------------------------------------------------------- requests

    def check_k(self, k: int) -> None:
        if not 1 <= k <= self.policy.max_k:
            raise ApiError(422, f"k: must be between 1 and {self.policy.max_k} (got {k})")

    def recommend(self, customer_ids: list[str], k: int) -> dict[str, Any]:
        self.check_k(k)
        if len(customer_ids) > self.policy.max_batch:
            raise ApiError(
                413,
                f"customer_ids: {len(customer_ids)} ids, at most {self.policy.max_batch} per request",
            )
        model = self.holder.current  # one model for the whole request, even if a switch happens meanwhile
        rec = model.recommender
        rows = rec.lookup(customer_ids)
        table = rec.user_table(rows)
        dim = model.cold_embedding.shape[1]
        emb = np.empty((len(customer_ids), dim), dtype=np.float32)
        source = np.where(rows < 0, "cold", "tower").astype(object)
        emb[rows < 0] = model.cold_embedding[0]
        cacheable = (rows >= 0) & model.cached_rows[np.maximum(rows, 0)]
        known = np.flatnonzero(rows >= 0)
        if self.cache is not None:
            asked = np.flatnonzero(cacheable)
            found = self.cache.get(model.key, [customer_ids[i] for i in asked], dim)
            for i, vec in zip(asked, found, strict=True):
                if vec is not None:
                    emb[i], source[i] = vec, "redis"
            self.cache.counters.add(uncached=int(known.size - asked.size))
        todo = np.flatnonzero(source == "tower")
        if todo.size:
            emb[todo] = rec.embed_table(rec.user_table(rows[todo]))
            if self.cache is not None:
                back = todo[cacheable[todo]]
                self.cache.put(model.key, [customer_ids[i] for i in back], emb[back])
        found_items = rec.search(emb, table, k)
        return {
            "version": model.key,
            "results": [
                {"customer_id": c, "cold_start": bool(r < 0), "embedding_source": str(s), "items": items}
                for c, r, s, items in zip(customer_ids, rows.tolist(), source, found_items, strict=True)
            ],
        }

    def embed_items(self, items: list[NewItem]) -> dict[str, Any]:
        if len(items) > self.policy.max_new_items:
            raise ApiError(413, f"items: {len(items)} items, at most {self.policy.max_new_items} per request")
        model = self.holder.current
        embedder = model.items
        if embedder is None:
            raise ApiError(503, "POST /embed/items: the service runs without the MiniLM text encoder")
        for r, item in enumerate(items):
            for part, known in (
                ("categorical", embedder.categorical),
                ("numerical", embedder.numerical),
                ("text", embedder.text),
            ):
                extra = sorted(set(getattr(item, part)) - set(known))
                if extra:
                    raise ApiError(
                        422, f"items[{r}].{part}.{extra[0]}: not an item tower feature (known: {known})"
                    )
            bad = [n for n, v in item.numerical.items() if v is not None and not np.isfinite(v)]
            if bad:
                raise ApiError(422, f"items[{r}].numerical.{bad[0]}: must be a finite number")
        vectors, unknown = embedder.embed([item.model_dump() for item in items])
        return {
            "version": model.key,
            "dim": int(vectors.shape[1]),
            "items": [
                {"article_id": item.article_id, "embedding": vec.tolist(), "unknown_categorical": unk}
                for item, vec, unk in zip(items, vectors, unknown, strict=True)
            ],
        }

    def version(self) -> dict[str, Any]:
        model = self.holder.current
        out = model.describe()
        out["cache"] = "redis" if self.cache is not None else "off"
        if self.cache is not None:
            out["redis_index_meta"] = self.cache.index_meta(model.key)
        return out

    def health(self) -> dict[str, Any]:
        return {
            "status": "ok",
            "pid": os.getpid(),
            "version": self.holder.current.key,
            "switches": self.holder.switches,
            "cache": self.cache.counters.snapshot() if self.cache is not None else "off",
        }


def _error(status: int, message: str, detail: Any = None) -> JSONResponse:
    body: dict[str, Any] = {"error": message}
    if detail is not None:
        body["detail"] = detail
    return JSONResponse(status_code=status, content=body)


def _validation_detail(errors: Any) -> list[dict[str, Any]]:
    """FastAPI's validation errors without the echoed input (it may be bytes or huge)."""
    return [
        {
            "loc": [str(p) for p in e.get("loc", ())],
            "msg": str(e.get("msg", "")),
            "type": str(e.get("type", "")),
        }
        for e in errors
    ]


def create_app(settings: Settings) -> FastAPI:
    service = Service(settings)
    if service.cache is None:
        log.warning("dc003 serve: no Redis URL configured: serving without a cache (every user embedding "
                    "from the user tower)")  # fmt: skip
    else:
        log.warning("dc003 serve: Redis cache at %s", settings.redis_url)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        service.holder.start()
        yield
        service.holder.stop()

    app = FastAPI(title="dc003 two-tower", lifespan=lifespan, openapi_url=None, docs_url=None, redoc_url=None)
    app.state.service = service

    @app.middleware("http")
    async def limit_body(request: Request, call_next: Any) -> Any:
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > service.policy.max_body_bytes):
            return _error(413, f"request body: larger than {service.policy.max_body_bytes} bytes")
        try:
            return await call_next(request)
        except Exception:  # never a traceback in a response
            log.exception("unhandled error on %s %s", request.method, request.url.path)
            return _error(500, "internal error")

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> Any:
        return _error(exc.status, exc.message, exc.detail)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> Any:
        detail = _validation_detail(exc.errors())
        first = detail[0] if detail else {"loc": [], "msg": "invalid request", "type": ""}
        if first["type"] == "json_invalid":
            return _error(422, "body: not a JSON document in UTF-8", detail)
        where = ".".join(p for p in first["loc"] if p not in ("body", "query")) or "body"
        return _error(422, f"{where}: {first['msg']}", detail)

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> Any:
        return _error(exc.status_code, str(exc.detail))

    @app.get("/recommend")
    def recommend_one(
        customer_id: Annotated[str, Query(min_length=1, max_length=MAX_ID_LENGTH)],
        k: Annotated[int, Query()] = 50,
    ) -> dict[str, Any]:
        out = service.recommend([customer_id], k)
        return {"version": out["version"], "k": k, **out["results"][0]}

    @app.post("/recommend")
    def recommend_batch(body: BatchRequest) -> dict[str, Any]:
        return {"k": body.k, **service.recommend(body.customer_ids, body.k)}

    @app.post("/embed/items")
    def embed_items(body: EmbedRequest) -> dict[str, Any]:
        return service.embed_items(body.items)

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        return service.health()

    @app.get("/version")
    def version() -> dict[str, Any]:
        return service.version()

    return app


def app_from_env() -> FastAPI:
    """The uvicorn factory each worker calls (``dc003.serve.app:app_from_env``)."""
    import dc003  # noqa: F401  (offline / no-telemetry environment before onnxruntime loads)

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s[%(process)d] %(message)s")
    raw = os.environ.get(SETTINGS_ENV)
    if not raw:
        raise RuntimeError(f"{SETTINGS_ENV} is not set: start the service with `dc003 serve`")
    return create_app(Settings.model_validate(json.loads(raw)))
