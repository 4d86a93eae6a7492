"""The export's id mappings (header + memory-mapped id tables, and the older all-JSON format) and the
memory-mapped npz reader (:mod:`dc003.exported`): lookups, round trips, and one clear error per bad file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dc003.errors import Dc003Error
from dc003.exported import IdTable, load_mappings, open_npz, read_artifact, write_legacy, write_mappings

CATEGORICAL = {"product_group_name": {"Shoes": 1, "Bags": 2}}


def _customers(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [bytes(rng.integers(0, 256, 32, dtype=np.uint8)).hex() for _ in range(n)]


def _write(tmp_path: Path, customers: list[str], articles: list[str] | None = None) -> Path:
    articles = articles or ["0108029001", "0108029012", "0110065001"]
    tables = {
        "articles": IdTable.build(articles, np.arange(len(articles))),
        "customers": IdTable.build(customers, np.arange(len(customers))),
    }
    path = tmp_path / "embedding_mappings.json"
    write_mappings(path, CATEGORICAL, tables, "test")
    return path


def test_hex_ids_are_stored_decoded_and_found_by_binary_search_in_any_order() -> None:
    ids = _customers(500)
    ids[7] = "ab" * 31 + "00"  # a key ending in a zero byte (numpy strips those from bytes values)
    rows = np.random.default_rng(1).permutation(500)
    table = IdTable.build(ids, rows)  # unsorted ids: sorted with their rows
    assert table.encoding == "hex" and table.keys.dtype == np.dtype("S32")
    assert table.lookup(ids).tolist() == rows.tolist()
    assert table.decode(np.arange(500)) == sorted(ids)
    unknown = ["ab" * 31, ids[0].upper(), ids[0][:-1] + " ", "x" * 64, "", "not-a-customer"]
    assert table.lookup(unknown).tolist() == [-1] * len(unknown)


def test_ids_at_rows_inverts_the_table_and_a_row_without_an_id_is_none() -> None:
    ids = _customers(20)
    rows = np.arange(20) * 2  # rows 1, 3, ... have no id
    table = IdTable.build(ids, rows)
    assert table.ids_at_rows(np.array([4, 3, 0, 38, 99])) == [ids[2], None, ids[0], ids[19], None]


def test_other_ids_are_utf8_keys_and_a_duplicate_is_refused() -> None:
    table = IdTable.build(["b-2", "a", "ü-1"], [0, 1, 2])
    assert table.encoding == "utf8" and table.keys.dtype == np.dtype("S4")
    queries = ["ü-1", "a", "b-2", "a\0", "b-22", "c", "\udc80"]  # the last: a lone surrogate, not UTF-8
    assert table.lookup(queries).tolist() == [2, 1, 0, -1, -1, -1, -1]
    assert dict(table.items()) == {"a": 1, "b-2": 0, "ü-1": 2}
    with pytest.raises(ValueError, match="id 'a' appears twice"):
        IdTable.build(["b", "a", "a"], [0, 1, 2])
    with pytest.raises(ValueError, match="empty or ends in a NUL"):
        IdTable.build(["a", ""], [0, 1])


def test_the_header_holds_no_id_and_the_tables_load_memory_mapped(tmp_path: Path) -> None:
    ids = _customers(300)
    path = _write(tmp_path, ids)
    assert ids[0] not in path.read_text() and "0108029001" not in path.read_text()
    m = load_mappings(path)
    assert m.format == 2 and m.categorical == CATEGORICAL
    assert isinstance(m.customers.keys.base, np.memmap) and not m.customers.keys.flags.writeable
    assert m.customers.lookup([ids[42], "nobody"]).tolist() == [42, -1]
    assert m.articles.lookup(["0110065001"]).tolist() == [2]


def test_the_previous_all_json_format_is_read_with_the_same_lookups(tmp_path: Path) -> None:
    ids = _customers(50)
    new = load_mappings(_write(tmp_path, ids))
    old_path = tmp_path / "old.json"
    write_legacy(old_path, new.categorical, {"articles": new.articles, "customers": new.customers}, "v1")
    doc = json.loads(old_path.read_text())
    assert "format" not in doc and doc["customers"][ids[3]] == 3  # what exports before format 2 wrote
    old = load_mappings(old_path)
    assert old.format == 1 and old.ids_path is None and old.categorical == CATEGORICAL
    queries = [*ids[::7], "nobody"]
    assert old.customers.lookup(queries).tolist() == new.customers.lookup(queries).tolist()
    assert dict(old.articles.items()) == dict(new.articles.items())


@pytest.mark.parametrize("damage", ["truncated", "header truncated", "newer format", "missing"])
def test_a_bad_mappings_file_is_one_error_naming_it(tmp_path: Path, damage: str) -> None:
    path = _write(tmp_path, _customers(200))
    ids = path.with_suffix(".npz")
    if damage == "truncated":
        ids.write_bytes(ids.read_bytes()[: ids.stat().st_size - 100])
        bad, rule = ids, "unreadable export artifact, truncated or corrupted (BadZipFile"
    elif damage == "header truncated":
        path.write_text(path.read_text()[:40])
        bad, rule = path, "unreadable export artifact, truncated or corrupted (JSONDecodeError"
    elif damage == "newer format":
        path.write_text(json.dumps({**json.loads(path.read_text()), "format": 3}))
        bad, rule = path, "format 3, newer than this dc003 reads (2)"
    else:
        ids.unlink()
        bad, rule = ids, "missing"
    with pytest.raises(Dc003Error) as err:
        load_mappings(path).customers  # noqa: B018  (the tables open on first use)
    assert str(err.value).startswith(f"{bad}: {rule}"), err.value


def test_open_npz_maps_what_np_load_reads_and_refuses_what_it_cannot_map(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    arrays = {
        "a": rng.integers(0, 9, (40, 7)),
        "b": np.asfortranarray(rng.standard_normal((5, 3)).astype(np.float32)),
        "empty": np.zeros((0, 4), dtype=np.int32),
    }
    np.savez(tmp_path / "x.npz", **arrays)
    opened = open_npz(tmp_path / "x.npz")
    assert sorted(opened) == sorted(arrays)
    for name, want in arrays.items():
        np.testing.assert_array_equal(opened[name], want)
        assert opened[name].dtype == want.dtype
    np.savez_compressed(tmp_path / "z.npz", **arrays)
    np.savez(tmp_path / "p.npz", a=np.array([{"x": 1}], dtype=object))
    for name, rule in (("z.npz", "truncated or corrupted (ValueError: a.npy is compressed"),
                       ("p.npz", "holds pickled Python objects, refused")):  # fmt: skip
        with pytest.raises(Dc003Error, match=f"^{tmp_path / name}: ") as err:
            read_artifact(tmp_path / name, open_npz)
        assert rule in str(err.value)
