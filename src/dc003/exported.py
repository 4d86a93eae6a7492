"""The export stage's data files that readers outside ``dc003.deploy`` open too (the service, the update's
warm start, scripts): one loader each, lazy, memory-mapped, and one clear error per bad file.

**Id mappings** (``embedding_mappings.json`` + ``embedding_mappings.npz``). The JSON file is a small
header: the format version, every categorical value -> index per feature (0 = unknown), and per id
table (``articles``: ``article_id`` -> item row, ``customers``: ``customer_id`` -> user row) its count,
key encoding and the CRC-32 of its two arrays. The arrays are in the ``.npz`` (``np.savez``, stored
uncompressed): ``<table>_keys``, the ids sorted, as fixed-width bytes (``hex``: every id is lowercase hex
of one even length, stored decoded, 32 bytes for an H&M customer id; else ``utf8``), and
``<table>_rows``, the row of each. :func:`load_mappings` memory-maps them; a lookup is a binary search
(``O(log n)`` pages touched), so nothing per id is built in Python and an unknown customer costs the same
as a known one. The header of the previous format (format 1, every id a JSON key, ~100 MB at H&M's 1.37M
customers) is still read (:func:`write_legacy` writes it, for the bench and the tests): an old promoted
registry version's export can still warm-start ``dc003 update``.

**npz files** (``user_features.npz`` too): :func:`open_npz` maps each array of an uncompressed ``.npz``
read-only in place of reading it; the members' CRC-32s are checked once, streaming (constant memory),
so a truncated or corrupted file is refused as ``np.load`` would have refused it.
"""

from __future__ import annotations

import contextlib
import json
import os
import struct
import zipfile
from collections.abc import Callable, Iterator, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np

from dc003.errors import Dc003Error, exception_summary
from dc003.io import atomic_path, write_json

FORMAT = 2
TABLES = ("articles", "customers")
_CHUNK = 1 << 20  # bytes per read of the CRC check (the RSS it adds)
T = TypeVar("T")


def read_artifact(path: Path, read: Callable[[Path], T]) -> T:
    """``read(path)``; a missing, truncated or corrupted artifact is one line naming it, never a traceback
    from ONNX Runtime, FAISS, numpy, zipfile or json."""
    if not path.is_file():
        raise Dc003Error(f"{path}: missing: run the export stage")
    try:
        return read(path)
    except Dc003Error:
        raise
    except Exception as exc:
        if "allow_pickle" in str(exc):  # numpy refuses pickled objects: they could run code when loaded
            rule = "holds pickled Python objects, refused: it may be unsafe to load"
        else:
            rule = f"unreadable export artifact, truncated or corrupted ({exception_summary(exc)})"
        raise Dc003Error(f"{path}: {rule}; re-run the export stage") from None


# ---------------------------------------------------------------------------------------------- npz


def _member(path: Path, fh: Any, info: zipfile.ZipInfo) -> np.ndarray:
    """The array of one stored member, memory-mapped (``fh``: the file, opened binary)."""
    if info.compress_type != zipfile.ZIP_STORED:
        raise ValueError(f"{info.filename} is compressed: np.savez_compressed cannot be memory-mapped")
    fh.seek(info.header_offset)
    local = fh.read(30)
    if len(local) < 30 or local[:4] != b"PK\x03\x04":
        raise ValueError(f"{info.filename}: no local zip header at byte {info.header_offset}")
    name_len, extra_len = struct.unpack("<HH", local[26:30])
    start = info.header_offset + 30 + name_len + extra_len
    fh.seek(start)
    version = np.lib.format.read_magic(fh)
    readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    if version not in readers:
        raise ValueError(f"{info.filename}: npy format version {version} (1.0 or 2.0 expected)")
    shape, fortran, dtype = readers[version](fh)
    if dtype.hasobject:
        raise ValueError(f"{info.filename}: object arrays need allow_pickle, refused")
    offset = fh.tell()
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if offset + nbytes > start + info.file_size or offset + nbytes > os.fstat(fh.fileno()).st_size:
        raise ValueError(f"{info.filename}: {shape} {dtype} runs past the end of its member")
    if nbytes == 0:
        return np.zeros(shape, dtype=dtype)
    order: Literal["C", "F"] = "F" if fortran else "C"
    return np.asarray(np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape, order=order))


def open_npz(path: Path, *, verify: bool = True) -> dict[str, np.ndarray]:
    """Every array of an uncompressed ``.npz`` (``np.savez``), memory-mapped read-only, by name; pages are
    read when touched. ``verify``: check each member's CRC-32 first (one streaming pass)."""
    arrays: dict[str, np.ndarray] = {}
    with zipfile.ZipFile(path) as zf, open(path, "rb") as fh:
        for info in zf.infolist():
            arrays[info.filename.removesuffix(".npy")] = _member(path, fh, info)
            if verify:
                with zf.open(info) as member:  # zipfile raises BadZipFile on a CRC mismatch at the end
                    while member.read(_CHUNK):
                        pass
    return arrays


def npz_crcs(path: Path) -> dict[str, int]:
    """Each member's CRC-32 as its zip directory records it (no data read)."""
    with zipfile.ZipFile(path) as zf:
        return {i.filename.removesuffix(".npy"): i.CRC for i in zf.infolist()}


# ---------------------------------------------------------------------------------------------- id tables


class IdTable:
    """Ids -> rows over sorted fixed-width keys (``encoding`` ``hex`` or ``utf8``, see the module): a
    lookup is a vectorised binary search; ``keys`` and ``rows`` may be memory-mapped."""

    def __init__(self, keys: np.ndarray, rows: np.ndarray, encoding: str) -> None:
        if encoding not in ("hex", "utf8"):
            raise ValueError(f"id encoding {encoding!r} (hex or utf8)")
        if (
            keys.ndim != 1
            or keys.dtype.kind != "S"
            or rows.shape != keys.shape
            or rows.dtype.kind not in "iu"
        ):
            raise ValueError(f"keys {keys.dtype}{keys.shape}, rows {rows.dtype}{rows.shape}: not an id table")
        self.keys, self.rows, self.encoding = keys, rows, encoding

    @classmethod
    def build(cls, ids: Sequence[str] | np.ndarray, rows: Sequence[int] | np.ndarray) -> IdTable:
        """The table of ``ids[i] -> rows[i]`` (ids unique; sorted here unless they already are)."""
        ids = np.asarray(ids, dtype=object)
        rows = np.asarray(rows)
        rows = rows.astype(np.int32 if rows.size == 0 or int(rows.max()) < 2**31 else np.int64)
        keys, encoding = _hex_keys(ids)
        if keys is None:
            keys = _utf8_keys(ids)
        if keys.size > 1 and not bool(np.all(keys[1:] > keys[:-1])):
            order = np.argsort(keys, kind="stable")
            keys, rows = keys[order], rows[order]
            same = np.flatnonzero(keys[1:] == keys[:-1])
            if same.size:
                raise ValueError(f"id {ids[order[same[0]]]!r} appears twice")
        return cls(keys, rows, encoding)

    def __len__(self) -> int:
        return int(self.keys.shape[0])

    def _encode(self, ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """The query keys (``keys``' dtype: the search never converts the table) and which can be in it."""
        width = self.keys.dtype.itemsize
        out: list[bytes] = []
        for s in ids:
            key = b""
            if self.encoding == "hex":
                if len(s) == 2 * width:
                    with contextlib.suppress(ValueError):
                        key = bytes.fromhex(s)
                    if key.hex() != s:  # upper case or spaces: not an id of this table
                        key = b""
            else:
                with contextlib.suppress(UnicodeEncodeError):  # a lone surrogate: no id of this table
                    raw = s.encode("utf-8")
                    key = raw if 0 < len(raw) <= width and not raw.endswith(b"\0") else b""
            out.append(key)
        return np.array(out, dtype=self.keys.dtype), np.array([len(k) > 0 for k in out], dtype=bool)

    def lookup(self, ids: Sequence[str]) -> np.ndarray:
        """Rows of ``ids``, int64 (``-1``: not in the table)."""
        n = len(self)
        if n == 0 or len(ids) == 0:
            return np.full(len(ids), -1, dtype=np.int64)
        query, valid = self._encode(ids)
        pos = np.minimum(np.searchsorted(self.keys, query), n - 1)
        hit = valid & (self.keys[pos] == query)
        return np.where(hit, self.rows[pos].astype(np.int64), -1)

    def decode(self, positions: np.ndarray | Sequence[int]) -> list[str]:
        """The ids at ``positions`` of the sorted keys."""
        width = self.keys.dtype.itemsize
        keys = self.keys[np.asarray(positions, dtype=np.int64)]
        if self.encoding == "hex":  # a decoded key may end in zero bytes, which numpy strips: pad back
            return [k.ljust(width, b"\0").hex() for k in keys.tolist()]
        return [k.decode("utf-8") for k in keys.tolist()]

    def ids_at_rows(self, rows: np.ndarray) -> list[str | None]:
        """The id of each of ``rows`` (None: no id maps to it); one pass over the table's rows."""
        rows = np.asarray(rows, dtype=np.int64)
        inverse = np.full(max(int(self.rows.max(initial=-1)), int(rows.max(initial=-1))) + 1, -1, np.int64)
        inverse[self.rows] = np.arange(len(self))
        pos = inverse[rows]
        found = iter(self.decode(pos[pos >= 0]))
        return [next(found) if p >= 0 else None for p in pos.tolist()]

    def items(self) -> Iterator[tuple[str, int]]:
        """Every ``(id, row)`` in key order (builds Python objects per id: for small tables)."""
        return zip(self.decode(np.arange(len(self))), self.rows.tolist(), strict=True)


_NIBBLE = np.full(256, 255, dtype=np.uint8)
_NIBBLE[np.frombuffer(b"0123456789", np.uint8)] = np.arange(10)
_NIBBLE[np.frombuffer(b"abcdef", np.uint8)] = np.arange(10, 16)


def _hex_keys(ids: np.ndarray) -> tuple[np.ndarray | None, str]:
    """The ids hex-decoded, when every id is lowercase hex of one even, non-zero length."""
    if ids.size == 0 or not all(isinstance(s, str) for s in ids):
        return None, "utf8"
    width = len(ids[0])
    if width == 0 or width % 2 or any(len(s) != width for s in ids):
        return None, "utf8"
    try:
        text = np.array(ids, dtype=f"S{width}")  # ASCII; a non-ASCII id raises
    except UnicodeEncodeError:
        return None, "utf8"
    nib = _NIBBLE[text.view(np.uint8).reshape(ids.size, width)]
    if (nib == 255).any():
        return None, "utf8"
    decoded = np.ascontiguousarray((nib[:, 0::2] << 4) | nib[:, 1::2])
    return decoded.view(f"S{width // 2}").ravel(), "hex"


def _utf8_keys(ids: np.ndarray) -> np.ndarray:
    raw = [str(s).encode("utf-8") for s in ids]
    bad = next((s for s, r in zip(ids, raw, strict=True) if not r or r.endswith(b"\0")), None)
    if bad is not None:
        raise ValueError(f"id {bad!r}: empty or ends in a NUL character")
    return np.array(raw, dtype=f"S{max((len(r) for r in raw), default=1)}")


# ---------------------------------------------------------------------------------------------- mappings


class Mappings:
    """One ``embedding_mappings.json`` read: ``categorical`` from the header at once, the id tables
    (``articles``, ``customers``) opened on first use (format 2: memory-mapped from the ``.npz``)."""

    def __init__(self, path: Path, header: dict[str, Any]) -> None:
        self.path, self.header = path, header
        self.format = int(header.get("format", 1))
        self.categorical: dict[str, dict[str, int]] = header["categorical"]

    @property
    def ids_path(self) -> Path | None:
        """The ``.npz`` of the id tables (None: format 1, the ids are in the header)."""
        return self.path.parent / self.header["ids_file"] if self.format >= 2 else None

    @cached_property
    def _tables(self) -> dict[str, IdTable]:
        if self.ids_path is None:
            return {t: IdTable.build(list(self.header[t]), list(self.header[t].values())) for t in TABLES}
        ids_path = self.ids_path
        return read_artifact(ids_path, lambda p: _read_tables(p, self.path, self.header))

    @property
    def articles(self) -> IdTable:
        return self._tables["articles"]

    @property
    def customers(self) -> IdTable:
        return self._tables["customers"]


def _read_tables(path: Path, header_path: Path, header: dict[str, Any]) -> dict[str, IdTable]:
    arrays = open_npz(path)
    crcs = npz_crcs(path)
    tables: dict[str, IdTable] = {}
    for name in TABLES:
        spec = header[name]
        for part in ("keys", "rows"):
            member = f"{name}_{part}"
            if member not in arrays:
                raise ValueError(f"no array {member}")
            if crcs[member] != spec["crc32"][part]:
                raise Dc003Error(
                    f"{path}: {member}: CRC-32 {crcs[member]:08x}, but {header_path} was written with "
                    f"{spec['crc32'][part]:08x}: the two files are of different exports; "
                    "re-run the export stage"
                )
        table = IdTable(arrays[f"{name}_keys"], arrays[f"{name}_rows"], spec["encoding"])
        if len(table) != spec["count"]:
            raise ValueError(f"{name}: {len(table)} ids, the header {header_path.name} says {spec['count']}")
        tables[name] = table
    return tables


def _read_header(path: Path) -> dict[str, Any]:
    header = json.loads(path.read_text("utf-8"))
    found = int(header.get("format", 1))
    if found > FORMAT:
        raise Dc003Error(f"{path}: format {found}, newer than this dc003 reads ({FORMAT}): upgrade dc003")
    missing = [k for k in ("categorical", *TABLES, *(["ids_file"] if found >= 2 else [])) if k not in header]
    if missing:
        raise ValueError(f"no key {missing[0]!r}")
    return dict(header)


def load_mappings(path: Path) -> Mappings:
    """The mappings of ``path`` (an ``embedding_mappings.json``, format 2 or the older format 1)."""
    return Mappings(path, read_artifact(path, _read_header))


def write_mappings(
    path: Path, categorical: dict[str, dict[str, int]], tables: dict[str, IdTable], note: str
) -> None:
    """``path`` (the header) and ``<path stem>.npz`` beside it (the id tables ``articles``, ``customers``)."""
    ids_path = path.with_suffix(".npz")
    arrays = {f"{t}_{part}": getattr(tables[t], part) for t in TABLES for part in ("keys", "rows")}
    with atomic_path(ids_path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
    crcs = npz_crcs(ids_path)
    header = {
        "format": FORMAT,
        "note": note,
        "categorical": categorical,
        "ids_file": ids_path.name,
        **{
            t: {
                "count": len(tables[t]),
                "encoding": tables[t].encoding,
                "crc32": {part: crcs[f"{t}_{part}"] for part in ("keys", "rows")},
            }
            for t in TABLES
        },
    }
    write_json(path, header, indent=1)


def write_legacy(
    path: Path, categorical: dict[str, dict[str, int]], tables: dict[str, IdTable], note: str
) -> None:
    """The format-1 file (every id a JSON key) the export wrote before format 2: what older registry
    versions hold; kept as the counterpart of the format-1 reader (bench, tests)."""
    doc = {"note": note, "categorical": categorical, **{t: dict(tables[t].items()) for t in TABLES}}
    write_json(path, doc, indent=0)
