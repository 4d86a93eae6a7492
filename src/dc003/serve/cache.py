"""The Redis cache of ``dc003 serve``: user embeddings of the most active customers and the index metadata,
under keys that carry the model's version key (:attr:`dc003.serve.served.Served.key`).

``dc003:<version key>:u:<customer_id>``
    The user embedding, float32 bytes, with the policy's TTL (params ``serve.cache_ttl_s``). Only the
    customers of the policy (``serve.cache_top_users``: the longest purchase histories) are written;
    the first replica that loads a version writes them all at once (``...:warm``, set NX, is the claim),
    and a miss is written back after the user tower ran.
``dc003:<version key>:index``
    A hash: what the replicas of this version serve (model and contract version, artifacts md5, data
    digest, items, users, index width), written at load.

Replicas share it; a Redis failure while serving is counted and the request takes the user tower,
never an error.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import redis

    from dc003.serve.served import Served

log = logging.getLogger("dc003.serve")
PREFIX = "dc003"
WARM_CHUNK = 1024


def user_key(version_key: str, customer_id: str) -> str:
    return f"{PREFIX}:{version_key}:u:{customer_id}"


def index_key(version_key: str) -> str:
    return f"{PREFIX}:{version_key}:index"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class Counters:
    """Per-process cache counters (``GET /healthz``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.values = {"hits": 0, "misses": 0, "writes": 0, "errors": 0, "uncached": 0}

    def add(self, **counts: int) -> None:
        with self._lock:
            for name, n in counts.items():
                self.values[name] += n

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            out: dict[str, Any] = dict(self.values)
        looked = out["hits"] + out["misses"]
        out["hit_rate"] = out["hits"] / looked if looked else None
        return out


class EmbeddingCache:
    def __init__(self, client: redis.Redis, ttl_s: int) -> None:
        self.client = client
        self.ttl_s = ttl_s
        self.counters = Counters()

    @classmethod
    def connect(cls, url: str, ttl_s: int) -> EmbeddingCache:
        """A client for ``url``; one clear error when nothing answers there."""
        import redis

        from dc003.errors import Dc003Error

        client = redis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)
        try:
            client.ping()
        except redis.RedisError as exc:
            raise Dc003Error(
                f"redis {url}: not reachable ({exc}): start it (`scripts/redis.sh start`) or serve "
                "without a cache (no --redis-url / DC003_REDIS_URL)"
            ) from None
        return cls(client, ttl_s)

    def get(self, version_key: str, customer_ids: list[str], dim: int) -> list[np.ndarray | None]:
        """The cached embeddings of ``customer_ids`` (None: not cached); a Redis failure reads as misses."""
        import redis

        if not customer_ids:
            return []
        try:
            raw = self.client.mget([user_key(version_key, c) for c in customer_ids])
        except redis.RedisError as exc:
            log.warning("redis read failed, using the user tower: %s", exc)
            self.counters.add(errors=1, misses=len(customer_ids))
            return [None] * len(customer_ids)
        out = [
            np.frombuffer(v, dtype=np.float32) if isinstance(v, bytes) and len(v) == 4 * dim else None
            for v in raw
        ]
        hits = sum(v is not None for v in out)
        self.counters.add(hits=hits, misses=len(out) - hits)
        return out

    def put(self, version_key: str, customer_ids: list[str], embeddings: np.ndarray) -> None:
        import redis

        if not customer_ids:
            return
        try:
            with self.client.pipeline(transaction=False) as pipe:
                for c, emb in zip(customer_ids, embeddings, strict=True):
                    pipe.set(user_key(version_key, c), np.ascontiguousarray(emb, np.float32).tobytes(),
                             ex=self.ttl_s)  # fmt: skip
                pipe.execute()
            self.counters.add(writes=len(customer_ids))
        except redis.RedisError as exc:
            log.warning("redis write failed: %s", exc)
            self.counters.add(errors=1)

    def publish(self, served: Served) -> None:
        """Write the version's index metadata and, if no replica claimed it yet, the policy's embeddings.
        A Redis failure is logged: the version serves anyway, from the user tower."""
        import redis

        try:
            self._publish(served)
        except redis.RedisError as exc:
            log.warning("redis: version %s not published: %s", served.key, exc)
            self.counters.add(errors=1)

    def _publish(self, served: Served) -> None:
        key = served.key
        meta: dict[Any, Any] = {k: str(v) for k, v in served.describe().items()}
        meta["index_dim"] = str(served.recommender.index.d)
        with self.client.pipeline(transaction=False) as pipe:
            pipe.hset(index_key(key), mapping=meta)
            pipe.expire(index_key(key), self.ttl_s)
            pipe.execute()
        if not self.client.set(f"{PREFIX}:{key}:warm", "1", nx=True, ex=self.ttl_s):
            return  # another replica warms (or warmed) this version
        rec = served.recommender
        cached = np.flatnonzero(served.cached_rows)
        found = rec.customers.ids_at_rows(cached)
        rows = cached[[c is not None for c in found]]  # a row no customer id maps to is never asked for
        ids = [c for c in found if c is not None]
        for s in range(0, rows.size, WARM_CHUNK):
            chunk = rows[s : s + WARM_CHUNK]
            self.put(key, ids[s : s + WARM_CHUNK], rec.embed_table(rec.user_table(chunk)))
        log.warning("redis: %d user embeddings of version %s written", rows.size, key)

    def index_meta(self, version_key: str) -> dict[str, str]:
        import redis

        try:
            raw = self.client.hgetall(index_key(version_key))
        except redis.RedisError:
            return {}
        return {_text(k): _text(v) for k, v in raw.items()}
