"""Find and open the raw inputs (Kaggle H&M layout, CSV or Parquet), every column as text.

Structural problems fail with one line ``file: column: rule``: a missing or empty file, a missing required
column, a file that cannot be parsed, a CSV row with more or fewer fields than the header, a CSV cut mid-row
(no line break after its last line); the rows are named by their line in the file. Row-level problems are
the cleaning rules' business (:mod:`dc003.data.clean`). Both formats go through the same parser: Parquet
columns are cast to text, so a value is judged by what it says, not by how the file happened to store it
(an int64 ``article_id`` reads as the 9 digits it holds). CSV bytes that are not UTF-8 are read as U+FFFD
(REPLACEMENT), never as a failure of the whole file: the value's row is then handled by its not_utf8 rule.
"""

from __future__ import annotations

import csv
import mmap
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from dc003.contracts.dc002 import Dc002Contract, RawFile
from dc003.contracts.loading import display_path
from dc003.errors import Dc003Error, located

if TYPE_CHECKING:
    import polars as pl

ROW = "__row"  # 1-based record number, header excluded
FORMATS: tuple[Literal["csv"], Literal["parquet"]] = ("csv", "parquet")
BLOCK_BYTES = 128 << 20  # CSV block read at once by batches(): ~1.2M transaction rows
REPLACEMENT = "\ufffd"  # what a byte that is not UTF-8 reads as
RAGGED_SCAN_BYTES = 1 << 30  # a failed read of a CSV up to this size is searched for its ragged line


@dataclass(frozen=True)
class RawInput:
    name: str  # the contract's key: articles | customers | transactions
    spec: RawFile
    path: Path
    format: Literal["csv", "parquet"]
    present: tuple[str, ...]  # declared columns found in the file
    absent: tuple[str, ...]  # declared optional columns not in the file (read as null)
    extra: tuple[str, ...]  # columns in the file the contract does not declare (not read; in the manifest)

    @property
    def display(self) -> str:
        return display_path(self.path)

    def scan(self) -> pl.LazyFrame:
        """Every declared column as String (absent optional ones null) plus the record number ``ROW``.

        A CSV goes through the block reader of :meth:`batches` (the whole file, concatenated): one reader
        for every CSV, so a ragged row or a byte that is not UTF-8 is handled alike in every file (Polars'
        own reader pads a row with too few fields with empty values, silently)."""
        import polars as pl

        if self.format == "parquet":
            return self._typed(pl.scan_parquet(self.path, row_index_name=ROW, row_index_offset=1))
        parts = list(self.batches())
        if parts:
            return pl.concat(parts).lazy()
        empty = pl.DataFrame(schema={ROW: pl.Int64, **dict.fromkeys(self.present, pl.String)})
        return self._typed(empty.lazy())

    def _typed(self, lf: pl.LazyFrame) -> pl.LazyFrame:
        import polars as pl

        cols = [pl.col(c).cast(pl.String) for c in self.present]
        cols += [pl.lit(None, dtype=pl.String).alias(c) for c in self.absent]
        return lf.select(pl.col(ROW).cast(pl.Int64), *cols)

    def batches(self, block_bytes: int = BLOCK_BYTES) -> Iterator[pl.DataFrame]:
        """The same frame as :meth:`scan`, one block at a time (bounded memory for any file size)."""
        import polars as pl
        import pyarrow as pa

        ragged: list[tuple[int, int, str]] = []  # (expected fields, fields, text) of rejected rows
        offset = 1
        try:
            for batch in self._reader(block_bytes, ragged):
                df = pl.from_arrow(pa.Table.from_batches([_as_text(batch)]))
                assert isinstance(df, pl.DataFrame)
                n = df.height
                yield self._typed(df.lazy().with_row_index(ROW, offset=offset)).collect()
                offset += n
        except pa.ArrowInvalid:
            if not ragged:
                raise
            expected, fields, text = ragged[0]
            raise Dc003Error(self._ragged(fields, expected, line_of(self.path, text))) from None

    def _reader(self, block_bytes: int, ragged: list[tuple[int, int, str]]) -> Any:
        import pyarrow as pa

        if self.format == "parquet":
            import pyarrow.parquet as pq

            rows = max(block_bytes // 100, 1)
            return pq.ParquetFile(self.path).iter_batches(batch_size=rows, columns=list(self.present))
        import pyarrow.csv as pacsv

        def invalid_row(row: Any) -> str:
            ragged.append((row.expected_columns, row.actual_columns, row.text))
            return "error"

        # read as bytes, decoded by _as_text: pyarrow's own decoding fails the whole file on one bad byte
        return pacsv.open_csv(
            self.path,
            read_options=pacsv.ReadOptions(block_size=block_bytes),
            parse_options=pacsv.ParseOptions(newlines_in_values=True, invalid_row_handler=invalid_row),
            convert_options=pacsv.ConvertOptions(
                column_types={c: pa.binary() for c in self.present},
                include_columns=list(self.present),
                strings_can_be_null=False,
            ),
        )

    def _ragged(self, fields: int, expected: int, line: int | None) -> str:
        where = f"line {line}" if line is not None else "a row"
        return (
            f"{self.display}: {where}: ragged_row: {fields} fields where the header has {expected} "
            f"(a stray delimiter or quote, or a row cut short)"
        )

    def parse_error(self, exc: BaseException) -> str:
        """The one-line message for a read that failed: the first ragged line when there is one."""
        if self.format == "csv" and self.path.stat().st_size <= RAGGED_SCAN_BYTES:
            found = first_ragged_line(self.path)
            if found is not None:
                line, fields, expected = found
                return self._ragged(fields, expected, line)
        return f"{self.display}: cannot parse as {self.format.upper()} ({_first_line(exc)})"


def _as_text(batch: Any) -> Any:
    """``batch`` with its binary (CSV) columns as UTF-8 text; bytes that are not UTF-8 become U+FFFD.
    The strict cast is the fast path (a vectorised check); only a column that fails it is decoded value by
    value."""
    import pyarrow as pa
    import pyarrow.compute as pc

    columns = []
    for column in batch.columns:
        if pa.types.is_binary(column.type):
            try:
                column = pc.cast(column, pa.string())
            except pa.ArrowInvalid:
                values = column.to_pylist()
                column = pa.array(
                    [None if v is None else v.decode("utf-8", "replace") for v in values], pa.string()
                )
        columns.append(column)
    return pa.RecordBatch.from_arrays(columns, names=batch.schema.names)


def line_of(path: Path, text: str) -> int | None:
    """The 1-based line of ``path`` that reads exactly ``text`` (the first one), None if none does."""
    needle = text.encode("utf-8", "surrogateescape")
    with path.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
        start = 0
        while True:
            at = data.find(needle, start)
            if at < 0:
                return None
            end = at + len(needle)
            starts_line = at == 0 or data[at - 1 : at] == b"\n"
            ends_line = end == len(data) or data[end : end + 1] in (b"\n", b"\r")
            if starts_line and ends_line:
                return _count_newlines(data, at) + 1
            start = at + 1


def _count_newlines(data: Any, end: int) -> int:
    count, step = 0, 64 << 20
    for lo in range(0, end, step):
        count += data[lo : min(lo + step, end)].count(b"\n")
    return count


def first_ragged_line(path: Path) -> tuple[int, int, int] | None:
    """(line, fields, header fields) of the first CSV record whose field count differs from the header's
    (Python's csv module: slow, for error messages only)."""
    with path.open(newline="", encoding="utf-8", errors="replace") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None:
            return None
        for record in reader:
            if record and len(record) != len(header):
                return reader.line_num, len(record), len(header)
    return None


def check_complete(path: Path, header: list[str]) -> None:
    """Refuse a CSV whose last line has no line break: a file cut mid-row (an interrupted download or
    copy). Every writer of the Kaggle layout ends the file with one; a cut row would otherwise be read as a
    row whose last values are short or missing."""
    size = path.stat().st_size
    with path.open("rb") as fh:
        fh.seek(max(0, size - (1 << 16)))
        tail = fh.read()
    if tail.endswith(b"\n") or tail.endswith(b"\r"):
        return
    cut = tail.rfind(b"\n") + 1
    if cut == 0 and len(tail) == size:
        return  # one line: the header alone (the cleaning reports "no data rows")
    fields = next(csv.reader([tail[cut:].decode("utf-8", "replace")]), [])
    with path.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
        line = _count_newlines(data, size) + 1
    shown = display_path(path)
    if len(fields) < len(header):
        what = f"stops after {len(fields)} of {len(header)} fields"
        column, fix = header[len(fields)], ""
    else:
        what = "is complete in fields but its last value may be cut"
        column, fix = header[-1], ", or end it with a line break if that row is whole"
    raise Dc003Error(
        f"{shown}: {column}: line {line}: truncated_row: the file ends mid-row (no line break after its "
        f"last line, which {what}); fetch the file again{fix}"
    )


def locate_file(raw_dir: str | os.PathLike[str], stem: str) -> tuple[Path, Literal["csv", "parquet"]]:
    found = [
        (Path(raw_dir) / f"{stem}.{fmt}", fmt)
        for fmt in FORMATS
        if (Path(raw_dir) / f"{stem}.{fmt}").is_file()
    ]
    if not found:
        where = display_path(Path(raw_dir) / stem)
        raise Dc003Error(f"{where}.csv: file not found (nor {stem}.parquet)")
    if len(found) > 1:
        raise Dc003Error(f"{display_path(found[0][0])}: ambiguous: {stem}.parquet exists too; keep one")
    return found[0]


def open_input(raw_dir: str | os.PathLike[str], name: str, spec: RawFile) -> RawInput:
    import polars as pl

    path, fmt = locate_file(raw_dir, spec.file)
    shown = display_path(path)
    if path.stat().st_size == 0:
        raise Dc003Error(f"{shown}: file is empty")
    try:
        if fmt == "csv":
            header = list(
                pl.scan_csv(
                    path, infer_schema=False, raise_if_empty=False, encoding="utf8-lossy"
                ).collect_schema()
            )
        else:
            header = list(pl.scan_parquet(path).collect_schema())
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise Dc003Error(f"{shown}: cannot read as {fmt.upper()} ({_first_line(exc)})") from exc
    if not header:
        raise Dc003Error(f"{shown}: file is empty (no header)")
    if fmt == "csv":
        check_complete(path, header)
    missing = [c for c, s in spec.columns.items() if s.required and c not in header]
    if missing:
        found = ", ".join(header[:8]) + (", ..." if len(header) > 8 else "")
        raise Dc003Error(located(shown, missing[0], f"required column is missing (file has: {found})"))
    present = tuple(c for c in spec.columns if c in header)
    absent = tuple(c for c in spec.columns if c not in header)
    extra = tuple(c for c in header if c not in spec.columns)
    return RawInput(name=name, spec=spec, path=path, format=fmt, present=present, absent=absent, extra=extra)


def open_inputs(raw_dir: str | os.PathLike[str], contract: Dc002Contract) -> dict[str, RawInput]:
    if not Path(raw_dir).is_dir():
        raise Dc003Error(f"{display_path(raw_dir)}: raw data directory not found (run the raw stage)")
    return {name: open_input(raw_dir, name, spec) for name, spec in contract.raw.items()}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def raw_facts(raw_dir: str | os.PathLike[str]) -> tuple[str, int]:
    """(source, rows of the customers file) of a raw stage output, what a params profile's
    ``applies_when`` is judged on (a directory without ``source.json`` counts as kaggle)."""
    import polars as pl

    from dc003.io import read_json

    source_json = Path(raw_dir) / "source.json"
    source = str(read_json(source_json)["source"]) if source_json.is_file() else "kaggle"
    path, fmt = locate_file(raw_dir, "customers")
    frame = pl.scan_parquet(path) if fmt == "parquet" else pl.scan_csv(path, infer_schema=False)
    return source, int(frame.select(pl.len()).collect().item())
