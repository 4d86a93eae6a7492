"""The text_embed section (the frozen MiniLM encoding of the catalogue's texts)."""

from __future__ import annotations

from pydantic import Field

from dc003.params.common import Section


class TextEmbedParams(Section):
    batch_size: int = Field(gt=0)  # MiniLM encode batch
