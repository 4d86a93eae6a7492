"""Rolling weekly folds on real data: fold ``f`` ends the data ``7 f`` days before its last day, so its
test week (the dataset's last ``test_days`` days, as DC-002 splits it) is the f-th last week and every
model of the fold trains on, and every baseline sees, only what came before it.

The truncation works on the raw Kaggle-layout transactions, before any cleaning: the fold's dataset is
then built by the same :func:`dc003.data.build.build_dataset` as the pipeline's. A row whose date does
not parse is kept in every fold: the build quarantines it, as it does in the pipeline.
"""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

DATE = "t_dat"
ORACLE_FILE = "oracle.parquet"
EPOCH = np.datetime64("1970-01-01", "D")


@dataclass(frozen=True)
class Fold:
    fold: int  # 0 = the last week of the data
    last_day: int  # the truncated data's last day (days since 1970-01-01) = its test week's last day
    test_start: int  # first day of the test week

    def as_dict(self) -> dict[str, Any]:
        return {
            "fold": self.fold,
            "test_start": str(EPOCH + self.test_start),
            "test_end": str(EPOCH + self.last_day),
            "last_day": self.last_day,
        }


def plan_folds(last_day: int, n_folds: int, test_days: int = 7) -> list[Fold]:
    """``n_folds`` consecutive, non-overlapping test windows of ``test_days`` days, latest first."""
    if n_folds < 1 or test_days < 1:
        raise ValueError(f"n_folds and test_days must be >= 1 (got {n_folds}, {test_days})")
    return [
        Fold(fold=f, last_day=last_day - test_days * f, test_start=last_day - test_days * (f + 1) + 1)
        for f in range(n_folds)
    ]


def _days(dates: Any) -> np.ndarray:
    """ISO date strings as days since 1970-01-01 (float, NaN where a date does not parse)."""
    import polars as pl

    parsed = pl.Series(dates).str.to_date("%Y-%m-%d", strict=False)
    return np.asarray(parsed.cast(pl.Int64).cast(pl.Float64).fill_null(np.nan).to_numpy())


def last_transaction_day(transactions: Path) -> int:
    import polars as pl

    frame = pl.read_csv(transactions, infer_schema=False, columns=[DATE])
    days = _days(frame[DATE])
    return int(np.nanmax(days))


def truncate_raw(src_dir: Path, dst_dir: Path, last_day: int) -> dict[str, int]:
    """Copy the raw Kaggle-layout files to ``dst_dir`` keeping only transactions up to ``last_day``.

    Transactions are read and written as text, so every kept row is byte-for-byte what the source holds
    (ids keep their zero padding). Articles and customers are copied as they are. A synthetic source's
    ``oracle.parquet`` ranks the buyers of the source's own last week, so it is copied only when nothing
    was cut (the latest fold): an earlier fold's test week is another week.
    """
    import polars as pl

    dst_dir.mkdir(parents=True, exist_ok=True)
    tx = src_dir / "transactions_train.csv"
    if not tx.is_file():
        raise ValueError(f"{tx}: rolling folds read transactions as CSV (transactions_train.csv)")
    frame = pl.read_csv(tx, infer_schema=False)
    days = _days(frame[DATE])
    keep = np.isnan(days) | (days <= last_day)
    kept = frame.filter(pl.Series(keep))
    kept.write_csv(dst_dir / tx.name)
    rows = {"transactions_read": frame.height, "transactions_kept": kept.height}
    for path in sorted(src_dir.iterdir()):
        if not path.is_file() or path.suffix not in (".csv", ".parquet") or path.stem == "transactions_train":
            continue
        if path.name == ORACLE_FILE and kept.height < frame.height:
            continue
        shutil.copyfile(path, dst_dir / path.name)
    return rows


def summarise(per_fold: list[dict[str, dict[str, float | None]]]) -> dict[str, dict[str, dict[str, Any]]]:
    """Mean and sample standard deviation per model and metric over the folds (undefined values left out)."""
    names: dict[str, list[str]] = {}
    for models in per_fold:
        for name, metrics in models.items():
            known = names.setdefault(name, [])
            known += [m for m in metrics if m not in known]
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for name, metric_names in names.items():
        out[name] = {}
        for metric in metric_names:
            values = [m.get(name, {}).get(metric) for m in per_fold]
            values = [None if v is None or math.isnan(v) else float(v) for v in values]
            arr = np.asarray([v for v in values if v is not None], dtype=np.float64)
            out[name][metric] = {
                "mean": float(arr.mean()) if arr.size else None,
                "std": float(arr.std(ddof=1)) if arr.size > 1 else None,
                "n_folds": int(arr.size),
                "values": values,  # per fold, in fold order (null: undefined in that fold)
            }
    return out
