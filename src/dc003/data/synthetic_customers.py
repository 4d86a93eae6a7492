"""Synthetic customers: the customers.csv attributes (with the real file's mess), plus the hidden
behaviour that drives their purchases: activity level, channel habit and the day they joined."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dc003.data.synthetic_config import Calendar, SyntheticConfig

CLUB = ("ACTIVE", "PRE-CREATE", "LEFT CLUB", "")  # "" is written as an empty field
NEWS = ("NONE", "Regularly", "Monthly", "None", "")  # "None" is the real data's stray spelling
_CH2_IF_ONLINE, _CH2_IF_STORE = 0.9, 0.2  # chance a visit is channel 2 for each channel habit


@dataclass(frozen=True)
class Customers:
    """Per-customer arrays in customer_id order (index i is the i-th smallest id)."""

    hex_ids: np.ndarray  # (n, 64) uint8 ASCII hex
    fn: np.ndarray  # bool: FN = 1.0, else empty
    active: np.ndarray  # bool
    club: np.ndarray  # index into CLUB
    news: np.ndarray  # index into NEWS
    age: np.ndarray  # true age (int16); the taste model uses it even where the file hides it
    age_missing: np.ndarray  # bool: written as an empty field
    postal: np.ndarray  # index into postal_hex
    postal_hex: np.ndarray  # (n_postal, 64) uint8
    online: np.ndarray  # bool: channel-2 habit (the "preferred channel" a history reveals)
    activity: np.ndarray  # float: relative purchase frequency
    join_day: np.ndarray  # int: first possible purchase day; > 0 means the first visit is that day
    is_new: np.ndarray  # bool: joined inside the period (first visit = join_day)
    is_buyer: np.ndarray  # bool

    @property
    def n(self) -> int:
        return len(self.fn)


def random_hex(n: int, rng: np.random.Generator, *, sort: bool = False) -> np.ndarray:
    """n random 256-bit ids as (n, 64) lowercase ASCII hex; sorted rows when asked."""
    raw = np.frombuffer(rng.bytes(32 * n), dtype=np.uint8).reshape(n, 32)
    if sort:
        # big-endian 64-bit words compare like the hex text; the first word decides all but ~2^-64
        words = raw.view(">u8")
        raw = raw[np.lexsort(words.T[::-1])]
    digits = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
    out = np.empty((n, 64), dtype=np.uint8)
    out[:, 0::2] = digits[raw >> 4]
    out[:, 1::2] = digits[raw & 15]
    return out


def _exact_count(rate: float, n: int) -> int:
    """How many rows get a kind of mess: the rate's share, but at least one."""
    return min(n, max(1, round(rate * n)))


def build_customers(cfg: SyntheticConfig, cal: Calendar, rng: np.random.Generator) -> Customers:
    n = cfg.n_customers
    young = rng.random(n) < 0.55
    age = np.where(young, rng.normal(24.0, 4.5, n), rng.normal(49.0, 10.0, n))
    age = np.clip(np.rint(age), 16, 99).astype(np.int16)
    age_missing = np.zeros(n, dtype=bool)
    age_missing[rng.choice(n, _exact_count(cfg.missing_age_rate, n), replace=False)] = True

    club = rng.choice(3, n, p=[0.9245, 0.075, 0.0005]).astype(np.int8)
    club[rng.choice(n, _exact_count(cfg.missing_club_rate, n), replace=False)] = 3
    fn = rng.random(n) < np.clip(0.35 + 0.004 * (age - 36), 0.1, 0.8)
    active = np.where(fn, rng.random(n) < 0.96, rng.random(n) < 0.003)
    news = np.where(
        fn, rng.choice(3, n, p=[0.036, 0.96, 0.004]), rng.choice(3, n, p=[0.995, 0.004, 0.001])
    ).astype(np.int8)
    picks = rng.permutation(n)
    n_empty = _exact_count(cfg.missing_news_rate, n)
    n_none = _exact_count(cfg.none_spelling_rate, max(n - n_empty, 1))
    news[picks[:n_empty]] = 4
    news[picks[n_empty : n_empty + n_none]] = 3

    n_postal = max(2, n // 4)
    weights = rng.lognormal(0.0, 1.2, n_postal)
    weights[0] = 0.06 * weights.sum() / 0.94  # one hash shared by ~6 % of customers, as in the real data
    postal = rng.choice(n_postal, n, p=weights / weights.sum()).astype(np.int32)

    # channel habit: younger customers lean online; overall channel-2 share matches the config
    base = (cfg.channel2_share - _CH2_IF_STORE) / (_CH2_IF_ONLINE - _CH2_IF_STORE)
    online = rng.random(n) < np.clip(base + 0.008 * (36 - age), 0.05, 0.98)
    activity = (
        rng.lognormal(0.0, cfg.activity_spread, n) * np.where(club == 1, 0.5, 1.0) * np.where(fn, 1.3, 1.0)
    )

    vol = cal.day_volume(cfg)
    is_new = rng.random(n) < cfg.new_customer_share
    join_day = np.where(is_new, rng.choice(cal.n_days, n, p=vol / vol.sum()), 0)
    is_buyer = is_new | (rng.random(n) >= cfg.inactive_customer_share)
    final_start = cal.block_start(cal.n_blocks - 1)
    if not (is_new & (join_day >= final_start)).any():
        # every scale must have a cold user: a first purchase inside the final week
        i = int(rng.integers(n))
        is_new[i], is_buyer[i] = True, True
        join_day[i] = int(rng.integers(final_start, cal.n_days))
    return Customers(
        hex_ids=random_hex(n, rng, sort=True),
        fn=fn,
        active=active,
        club=club,
        news=news,
        age=age,
        age_missing=age_missing,
        postal=postal,
        postal_hex=random_hex(n_postal, rng),
        online=online,
        activity=activity,
        join_day=join_day.astype(np.int32),
        is_new=is_new,
        is_buyer=is_buyer,
    )
