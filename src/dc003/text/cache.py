"""A persistent text -> vector cache keyed by SHA-256 of the text, so an unchanged text is never embedded
twice, across runs and data drops.

One ``vectors.npz`` per encoder (``keys``: sorted ``(N,)`` 32-byte digests, ``vectors``: ``(N, D)``
float32), rewritten atomically when new texts are added. The encoder identity (a hash of its weights)
names the cache directory, so vectors of a different encoder are never mixed in.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from dc003.io import atomic_path

KEY_DTYPE = np.dtype("S32")


def text_key(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8")).digest()


class VectorCache:
    def __init__(self, directory: str | os.PathLike[str], dim: int) -> None:
        self.path = Path(directory) / "vectors.npz"
        self.dim = dim
        self.keys = np.empty(0, dtype=KEY_DTYPE)
        self.vectors = np.empty((0, dim), dtype=np.float32)
        if self.path.is_file():
            with np.load(self.path) as data:
                keys, vectors = data["keys"].astype(KEY_DTYPE), data["vectors"].astype(np.float32)
            if vectors.ndim != 2 or vectors.shape[1] != dim or keys.shape[0] != vectors.shape[0]:
                raise ValueError(f"{self.path}: cache holds {vectors.shape} vectors, expected (*, {dim})")
            self.keys, self.vectors = keys, vectors

    def __len__(self) -> int:
        return int(self.keys.shape[0])

    def lookup(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(found, rows)``: for each key whether it is cached and, where it is, its row in ``vectors``."""
        keys = np.asarray(keys, dtype=KEY_DTYPE)
        if not len(self):
            return np.zeros(keys.shape[0], dtype=bool), np.zeros(keys.shape[0], dtype=np.int64)
        rows = np.searchsorted(self.keys, keys).clip(0, len(self) - 1)
        return self.keys[rows] == keys, rows

    def add(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        """Add new entries (keys not yet cached) and persist the cache atomically."""
        keys = np.asarray(keys, dtype=KEY_DTYPE)
        if keys.size == 0:
            return
        merged_keys = np.concatenate([self.keys, keys])
        merged = np.concatenate([self.vectors, np.asarray(vectors, dtype=np.float32)])
        order = np.argsort(merged_keys, kind="stable")
        merged_keys, merged = merged_keys[order], merged[order]
        keep = np.ones(merged_keys.shape[0], dtype=bool)
        keep[1:] = merged_keys[1:] != merged_keys[:-1]
        self.keys, self.vectors = merged_keys[keep], merged[keep]
        with atomic_path(self.path) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, keys=self.keys, vectors=self.vectors)
