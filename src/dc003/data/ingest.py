"""Find and open the raw inputs (Kaggle H&M layout, CSV or Parquet), every column as text.

Structural problems fail with one line ``file: column: rule``: a missing or empty file, a missing required
column, a file that cannot be parsed. Row-level problems are the cleaning rules' business
(:mod:`dc003.data.clean`). Both formats go through the same parser: Parquet columns are cast to text, so
a value is judged by what it says, not by how the file happened to store it.
"""

from __future__ import annotations

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


@dataclass(frozen=True)
class RawInput:
    name: str  # the contract's key: articles | customers | transactions
    spec: RawFile
    path: Path
    format: Literal["csv", "parquet"]
    present: tuple[str, ...]  # declared columns found in the file
    absent: tuple[str, ...]  # declared optional columns not in the file (read as null)
    extra: tuple[str, ...]  # columns in the file the contract does not declare (ignored)

    @property
    def display(self) -> str:
        return display_path(self.path)

    def scan(self) -> pl.LazyFrame:
        """Every declared column as String (absent optional ones null) plus the record number ``ROW``."""
        import polars as pl

        if self.format == "csv":
            lf = pl.scan_csv(
                self.path,
                infer_schema=False,
                row_index_name=ROW,
                row_index_offset=1,
                empty_string_is_null=False,
                raise_if_empty=False,
            )
        else:
            lf = pl.scan_parquet(self.path, row_index_name=ROW, row_index_offset=1)
        return self._typed(lf)

    def _typed(self, lf: pl.LazyFrame) -> pl.LazyFrame:
        import polars as pl

        cols = [pl.col(c).cast(pl.String) for c in self.present]
        cols += [pl.lit(None, dtype=pl.String).alias(c) for c in self.absent]
        return lf.select(pl.col(ROW).cast(pl.Int64), *cols)

    def batches(self, block_bytes: int = BLOCK_BYTES) -> Iterator[pl.DataFrame]:
        """The same frame as :meth:`scan`, one block at a time (bounded memory for any file size)."""
        import polars as pl
        import pyarrow as pa

        offset = 1
        if self.format == "csv":
            import pyarrow.csv as pacsv

            reader: Any = pacsv.open_csv(
                self.path,
                read_options=pacsv.ReadOptions(block_size=block_bytes),
                convert_options=pacsv.ConvertOptions(
                    column_types={c: pa.string() for c in self.present},
                    include_columns=list(self.present),
                    strings_can_be_null=False,
                ),
            )
        else:
            import pyarrow.parquet as pq

            rows = max(block_bytes // 100, 1)
            reader = pq.ParquetFile(self.path).iter_batches(batch_size=rows, columns=list(self.present))
        for batch in reader:
            df = pl.from_arrow(pa.Table.from_batches([batch]))
            assert isinstance(df, pl.DataFrame)
            n = df.height
            yield self._typed(df.lazy().with_row_index(ROW, offset=offset)).collect()
            offset += n


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
            header = list(pl.scan_csv(path, infer_schema=False, raise_if_empty=False).collect_schema())
        else:
            header = list(pl.scan_parquet(path).collect_schema())
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise Dc003Error(f"{shown}: cannot read as {fmt.upper()} ({_first_line(exc)})") from exc
    if not header:
        raise Dc003Error(f"{shown}: file is empty (no header)")
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
