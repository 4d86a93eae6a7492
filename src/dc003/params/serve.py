"""params.yaml section `serve`: `dc003 serve`, the HTTP service. No pipeline stage reads it, so no stage
depends on this module and an edit here re-runs nothing."""

from __future__ import annotations

from pydantic import Field

from dc003.params.common import Section, extension


class ServeParams(Section):
    """The Redis cache policy, the request limits and how often a replica looks for a new model."""

    cache_top_users: int = extension(
        "Redis caches the user embeddings of this many customers, those with the longest purchase "
        "history the user tower sees (0: none cached)",
        ge=0,
    )
    cache_ttl_s: int = extension("how long a cached embedding (and the version's index metadata) lives", gt=0)
    max_k: int = Field(gt=0)  # the largest k a request may ask for
    max_batch: int = Field(gt=0)  # customer ids per POST /recommend
    max_new_items: int = Field(gt=0)  # articles per POST /embed/items
    max_body_bytes: int = Field(gt=0)  # a larger request body is refused (413) before it is read
    reload_poll_s: float = Field(gt=0)  # a replica checks the registry / artifacts folder this often
