"""Configuration of the synthetic H&M-layout generator: sizes, the hidden preference model's knobs,
volume shape and mess rates, plus the named scale presets and the calendar they imply."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

Scale = Literal["tiny", "small", "default", "full"]


class SyntheticConfig(BaseModel):
    """Everything that shapes one synthetic dataset; the seed is passed separately.

    The preference model: a customer's taste vector is ``sqrt(segment_weight)`` parts a segment
    vector fixed by observable features (age, club status, news frequency, preferred channel) and
    ``sqrt(1 - segment_weight)`` parts an individual vector seen only through purchases. Articles
    and departments have unit taste vectors built from their attributes (product group and type,
    colour, graphical appearance, price band, section, garment group, index group, and two hidden
    style themes that only the words of prod_name / detail_desc reveal).

    A fresh purchase first picks a department (taste . department vector / ``dept_temperature``
    plus the log of the department's current assortment mass), then an article inside it
    (taste . article vector / ``item_temperature`` plus ``popularity_weight`` x log base popularity
    plus the log lifecycle weight: rise to ``lifecycle_peak_weeks``, decay with
    ``lifecycle_decay_weeks`` to ``lifecycle_floor``, ``novelty_boost`` in the first
    ``novelty_weeks``). Taste-neutral offsets make the population's average choice follow the
    assortment and popularity alone, so global best-sellers come only from those knobs. Articles
    the customer bought on an earlier day are down-weighted by ``1 - satiation``; with probability
    ``repeat_rate`` a purchase instead re-buys one of them outright.

    Lower temperatures give sharper (more predictable) choices; a higher segment_weight makes cold
    customers more predictable from their features but global popularity stronger.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    n_customers: int = Field(gt=0, description="customers.csv rows")
    n_articles: int = Field(ge=20, description="articles.csv rows")
    n_transactions: int = Field(gt=0, description="approximate transactions_train.csv rows (within 5 %)")
    start_date: date = date(2018, 9, 20)
    end_date: date = date(2020, 9, 22)

    # hidden preference model
    latent_dim: int = Field(default=48, ge=4, le=256, description="size of the hidden taste space")
    segment_weight: float = Field(
        default=0.6, ge=0.0, le=1.0, description="share of taste variance explained by observable features"
    )
    dept_temperature: float = Field(default=0.04, gt=0.0, description="sharpness of the department choice")
    item_temperature: float = Field(default=0.025, gt=0.0, description="sharpness of the article choice")
    popularity_weight: float = Field(
        default=0.3, ge=0.0, description="exponent on an article's base popularity (long tail)"
    )
    popularity_spread: float = Field(default=1.0, ge=0.0, description="sd of log base popularity")
    repeat_rate: float = Field(
        default=0.03, ge=0.0, lt=1.0, description="chance a purchase repeats one from an earlier day"
    )
    satiation: float = Field(
        default=0.99,
        ge=0.0,
        le=1.0,
        description="chance a fresh pick of an already-bought article is redrawn",
    )
    novelty_boost: float = Field(
        default=0.3, ge=0.0, description="log-weight bonus in an article's first weeks"
    )
    novelty_weeks: int = Field(default=2, ge=0)
    lifecycle_peak_weeks: int = Field(default=3, ge=1, description="weeks from release to peak popularity")
    lifecycle_decay_weeks: float = Field(default=10.0, gt=0.0, description="e-folding time of the decay")
    lifecycle_floor: float = Field(
        default=0.3, gt=0.0, le=1.0, description="share of peak weight an old article keeps"
    )
    back_catalogue_share: float = Field(
        default=0.35, ge=0.0, le=1.0, description="share of products released before start_date"
    )

    # volume and customers
    growth: float = Field(default=1.4, gt=0.0, description="daily volume at end_date / at start_date")
    weekly_amplitude: float = Field(default=0.08, ge=0.0, lt=1.0)
    yearly_amplitude: float = Field(default=0.2, ge=0.0, lt=1.0, description="summer peak, winter trough")
    new_customer_share: float = Field(
        default=0.3, ge=0.0, le=1.0, description="customers whose first purchase falls inside the period"
    )
    inactive_customer_share: float = Field(
        default=0.007, ge=0.0, lt=1.0, description="customers who never buy"
    )
    activity_spread: float = Field(default=1.0, ge=0.0, description="sd of log customer activity")
    basket_mean: float = Field(default=3.2, ge=1.0, description="mean distinct articles per customer-day")
    quantity_rate: float = Field(default=0.045, ge=0.0, lt=1.0, description="chance a row is bought 2+ times")
    channel2_share: float = Field(default=0.7, ge=0.0, le=1.0)

    # mess; each kind appears at least once at every scale
    missing_age_rate: float = Field(default=0.012, ge=0.0, le=1.0)
    missing_club_rate: float = Field(default=0.005, ge=0.0, le=1.0)
    missing_news_rate: float = Field(default=0.012, ge=0.0, le=1.0)
    none_spelling_rate: float = Field(default=0.0005, ge=0.0, le=1.0, description="'None' instead of 'NONE'")
    missing_desc_rate: float = Field(default=0.004, ge=0.0, le=1.0)
    orphan_rate: float = Field(default=0.0001, ge=0.0, le=0.5, description="transactions with unknown keys")

    @model_validator(mode="after")
    def _check_period(self) -> SyntheticConfig:
        if (self.end_date - self.start_date).days < 27:
            raise ValueError(f"end_date must be at least 4 weeks after start_date (got {self.start_date} .. "
                             f"{self.end_date})")  # fmt: skip
        return self


def scale_preset(name: Scale) -> SyntheticConfig:
    """The named sizes: tiny (tests), small, default (the pipeline's data), full (Kaggle size)."""
    sizes = {
        "tiny": (300, 400, 6_000),
        "small": (3_000, 1_500, 60_000),
        "default": (20_000, 6_000, 450_000),
        "full": (1_371_980, 105_542, 31_788_324),
    }
    if name not in sizes:
        raise ValueError(f"unknown scale {name!r}; expected one of {sorted(sizes)}")
    n_customers, n_articles, n_transactions = sizes[name]
    return SyntheticConfig(n_customers=n_customers, n_articles=n_articles, n_transactions=n_transactions)


SCALES: dict[str, SyntheticConfig] = {
    name: scale_preset(name) for name in ("tiny", "small", "default", "full")
}  # frozen models; a constant table, not state


@dataclass(frozen=True)
class Calendar:
    """Days 0..n_days-1 from start_date; weeks ("blocks") are aligned so the last block is the final
    seven days. Articles are released on block starts, popularity changes block by block."""

    start: date
    n_days: int
    n_blocks: int
    offset: int  # days missing from the first, partial block

    def block_of(self, day: np.ndarray) -> np.ndarray:
        return ((day + self.offset) // 7).astype(np.int16)

    def block_start(self, block: int) -> int:
        return max(0, block * 7 - self.offset)

    def dates(self) -> list[str]:
        return [(self.start + timedelta(days=d)).isoformat() for d in range(self.n_days)]

    def day_volume(self, cfg: SyntheticConfig) -> np.ndarray:
        """Relative purchase volume per day: growth, a weekly rhythm and a mild summer peak."""
        days = np.arange(self.n_days)
        trend = np.exp(math.log(cfg.growth) * days / max(self.n_days - 1, 1))
        weekday = np.array([(self.start + timedelta(days=int(d))).weekday() for d in days[:7]])
        # weekday pattern: quieter Monday/Tuesday and Sunday, busier mid-week and Saturday
        rhythm = np.array([-1.0, -0.8, 0.7, 0.8, 0.4, 0.6, -0.7])[weekday][days % 7]
        doy = np.array([(self.start + timedelta(days=int(d))).timetuple().tm_yday for d in days])
        season = np.cos(2 * math.pi * (doy - 180) / 365.25)
        return trend * (1 + cfg.weekly_amplitude * rhythm) * (1 + cfg.yearly_amplitude * season)


def calendar(cfg: SyntheticConfig) -> Calendar:
    n_days = (cfg.end_date - cfg.start_date).days + 1
    n_blocks = math.ceil(n_days / 7)
    return Calendar(start=cfg.start_date, n_days=n_days, n_blocks=n_blocks, offset=n_blocks * 7 - n_days)
