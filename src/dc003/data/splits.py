"""Time-based splits anchored on the last day of the data: test = the last ``test_days``, val = the
``val_days`` before, train = ``train_window_days`` before that, history = everything earlier.

A split's cutoff is its first day; features for the split use interactions strictly before it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dc003.contracts.dc002 import Splits
from dc003.errors import Dc003Error

if TYPE_CHECKING:
    import polars as pl

EPOCH = dt.date(1970, 1, 1)


def day_to_date(day: int) -> str:
    return (EPOCH + dt.timedelta(days=int(day))).isoformat()


@dataclass(frozen=True)
class SplitPlan:
    first_day: int
    last_day: int
    train_start: int
    val_start: int
    test_start: int
    train_window_days: int

    @property
    def cutoffs(self) -> dict[str, int]:
        return {"train": self.train_start, "val": self.val_start, "test": self.test_start}

    @property
    def ends(self) -> dict[str, int]:
        """Last day (inclusive) of each split."""
        return {"train": self.val_start - 1, "val": self.test_start - 1, "test": self.last_day}

    def split_expr(self, day: pl.Expr) -> pl.Expr:
        import polars as pl

        return (
            pl.when(day < self.train_start)
            .then(pl.lit("history"))
            .when(day < self.val_start)
            .then(pl.lit("train"))
            .when(day < self.test_start)
            .then(pl.lit("val"))
            .otherwise(pl.lit("test"))
        )

    def to_json(self) -> dict[str, Any]:
        splits = {
            name: {
                "cutoff_day": cut,
                "cutoff_date": day_to_date(cut),
                "last_day": self.ends[name],
                "last_date": day_to_date(self.ends[name]),
                "days": self.ends[name] - cut + 1,
            }
            for name, cut in self.cutoffs.items()
        }
        return {
            "anchor": "last_day",
            "first_day": self.first_day,
            "first_date": day_to_date(self.first_day),
            "last_day": self.last_day,
            "last_date": day_to_date(self.last_day),
            "train_window_days": self.train_window_days,
            "history_days": self.train_start - self.first_day,
            "splits": splits,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SplitPlan:
        s = data["splits"]
        return cls(
            first_day=int(data["first_day"]),
            last_day=int(data["last_day"]),
            train_start=int(s["train"]["cutoff_day"]),
            val_start=int(s["val"]["cutoff_day"]),
            test_start=int(s["test"]["cutoff_day"]),
            train_window_days=int(data["train_window_days"]),
        )


def plan_splits(first_day: int, last_day: int, spec: Splits, train_window_days: int) -> SplitPlan:
    test_start = last_day - spec.test_days + 1
    val_start = test_start - spec.val_days
    train_start = val_start - train_window_days
    needed = spec.test_days + spec.val_days + train_window_days + spec.min_history_days
    have = last_day - first_day + 1
    if train_start - first_day < spec.min_history_days:
        fits = have - spec.test_days - spec.val_days - spec.min_history_days
        knob = (
            f"lower params.yaml dataset.train_window_days (or the applied params profile's) to at most {fits}"
            if fits > 0
            else "the test, val and history days of contracts/dc002.yaml splits leave no train window"
        )
        raise Dc003Error(
            f"transactions: t_dat: the data spans {have} days "
            f"({day_to_date(first_day)} .. {day_to_date(last_day)}) "
            f"but the splits need {needed} (test {spec.test_days} + val {spec.val_days} + train "
            f"{train_window_days} + history {spec.min_history_days}): {knob}"
        )
    return SplitPlan(first_day, last_day, train_start, val_start, test_start, train_window_days)
