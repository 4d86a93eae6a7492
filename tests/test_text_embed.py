"""The text_embed stage: vectors cached by text hash (never embedded twice, across runs and data drops),
empty text -> zero vector, output aligned to item_idx, and the packaged MiniLM loading offline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dc003.text.cache import VectorCache, text_key
from dc003.text.embed import embed_items, embed_texts, load_item_text
from tests.test_train_fixtures import contracts


class CountingEncoder:
    """A deterministic fake encoder that records every text it is asked to embed."""

    def __init__(self, dim: int = 384) -> None:
        self.dim = dim
        self.seen: list[str] = []

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.seen += texts
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, t in enumerate(texts):
            out[i, len(t) % self.dim] = 1.0
            out[i, -1] = float(len(t))
        return out


def _items(path: Path, names: list[str], descs: list[str]) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    table = pa.table(
        {"item_idx": np.arange(len(names), dtype=np.int32), "prod_name": names, "detail_desc": descs}
    )
    pq.write_table(table, path / "items.parquet")
    return path


def test_cache_never_embeds_a_text_twice(tmp_path: Path) -> None:
    enc = CountingEncoder()
    cache = VectorCache(tmp_path / "c", 384)
    vec, stats = embed_texts(["a", "bb", "a", ""], cache, lambda: enc)
    assert enc.seen == ["a", "bb"]  # distinct, non-empty
    assert stats == {"texts": 4, "empty": 1, "distinct": 2, "cache_hits": 0, "embedded": 2}
    assert np.array_equal(vec[0], vec[2]) and not vec[3].any()  # empty text -> zero vector
    # a new process (new cache object on the same directory): nothing to embed
    again = VectorCache(tmp_path / "c", 384)
    vec2, stats2 = embed_texts(["bb", "a"], again, lambda: pytest.fail("encoder must not be loaded"))
    assert stats2["cache_hits"] == 2 and stats2["embedded"] == 0
    assert np.array_equal(vec2[0], vec[1])


def test_cache_lookup_and_persisted_format(tmp_path: Path) -> None:
    cache = VectorCache(tmp_path, 3)
    keys = np.array([text_key("x"), text_key("y")], dtype="S32")
    cache.add(keys, np.array([[1, 2, 3], [4, 5, 6]], dtype=np.float32))
    found, rows = VectorCache(tmp_path, 3).lookup(np.array([text_key("y"), text_key("z")], dtype="S32"))
    assert found.tolist() == [True, False]
    assert cache.vectors[rows[0]].tolist() == [4, 5, 6]
    with pytest.raises(ValueError, match="expected"):
        VectorCache(tmp_path, 4)


def test_embed_items_across_data_drops(tmp_path: Path) -> None:
    dc003, dc002 = contracts()
    enc = CountingEncoder()
    first = _items(tmp_path / "drop1", ["red shirt", "blue jeans"], ["cotton", ""])
    out = tmp_path / "out"
    manifest = embed_items(
        first, tmp_path / "cache", out, dc003=dc003, dc002=dc002, batch_size=8, encoder=lambda: ("fake", enc)
    )
    vectors = load_item_text(out)
    assert vectors.shape == (2, 2, 384) and manifest["shape"] == [2, 2, 384]
    assert [f["column"] for f in manifest["features"]] == [
        "prod_name",
        "detail_desc",
    ]  # product_name -> prod_name
    assert not vectors[1, 1].any()  # missing description
    assert sorted(enc.seen) == ["blue jeans", "cotton", "red shirt"]
    # the next drop: one article renamed, one added, order changed; only the new texts are embedded
    enc.seen.clear()
    second = _items(tmp_path / "drop2", ["blue jeans", "red shirt v2", "red shirt"], ["", "cotton", "cotton"])
    embed_items(
        second, tmp_path / "cache", out, dc003=dc003, dc002=dc002, batch_size=8, encoder=lambda: ("fake", enc)
    )
    assert enc.seen == ["red shirt v2"]
    again = load_item_text(out)
    assert np.array_equal(again[0, 0], vectors[1, 0]) and np.array_equal(again[2, 0], vectors[0, 0])


def test_embed_items_rejects_unordered_items(tmp_path: Path) -> None:
    dc003, dc002 = contracts()
    d = tmp_path / "bad"
    d.mkdir()
    pq.write_table(
        pa.table(
            {"item_idx": np.array([1, 0], dtype=np.int32), "prod_name": ["a", "b"], "detail_desc": ["", ""]}
        ),
        d / "items.parquet",
    )
    with pytest.raises(ValueError, match="item_idx"):
        embed_items(
            d, tmp_path / "c", tmp_path / "o", dc003=dc003, dc002=dc002, batch_size=8,
            encoder=lambda: ("fake", CountingEncoder()),
        )  # fmt: skip


@pytest.mark.slow
def test_packaged_minilm_loads_offline_and_embeds(tmp_path: Path) -> None:
    from dc003.text.embed import encoder_identity, load_encoder

    model_id, model_dir = encoder_identity()
    assert model_id.startswith("all-MiniLM-L6-v2-")
    encode = load_encoder(model_dir, batch_size=4)
    out = encode(["a red cotton shirt", "a red cotton shirt", "black leather boots"])
    assert out.shape == (3, 384) and out.dtype == np.float32
    assert np.allclose(out[0], out[1], atol=1e-5)
    cos = float(out[0] @ out[2] / np.linalg.norm(out[0]) / np.linalg.norm(out[2]))
    assert cos < 0.99
