"""dc003.scoring.baselines on tiny hand-built logs with known expected lists."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp

from dc003.scoring.baselines import als, popularity_last_week, repurchase, trending

CUTOFF = 100  # the last training day is 99; "last week" is days 93..99

Log = tuple[np.ndarray, np.ndarray, np.ndarray]


def _log(rows: list[tuple[int, int, int]]) -> Log:
    """(user, item, day) rows -> three int32 arrays."""
    arr = np.array(rows, dtype=np.int32).reshape(-1, 3)
    return arr[:, 0].copy(), arr[:, 1].copy(), arr[:, 2].copy()


# Purchases per item (days); "week" counts days 93..99, "total" the whole log before the cutoff:
#   item 0: 98                  -> week 1, total 1
#   item 1: 10                  -> week 0, total 1
#   item 2: 95, 96              -> week 2, total 2
#   item 3: 97, 50, 51          -> week 1, total 3
#   item 4: 92 (a day before the week), 11, 12  -> week 0, total 3
#   item 5: never               -> week 0, total 0
POP_LOG = [
    (0, 0, 98),
    (0, 1, 10),
    (1, 2, 95), (2, 2, 96),
    (2, 3, 97), (1, 3, 50), (2, 3, 51),
    (1, 4, 92), (1, 4, 11), (2, 4, 12),
]  # fmt: skip
# week desc, then total desc, then index: 2 (2, 2), 3 (1, 3), 0 (1, 1), 4 (0, 3), 1 (0, 1), 5 (0, 0)
# (the total decides 3 before 0 and 4 before 1, against the index order)
POP_ORDER = [2, 3, 0, 4, 1, 5]


def test_popularity_last_week_known_order() -> None:
    u, i, d = _log(POP_LOG)
    out = popularity_last_week(u, i, d, n_items=6, cutoff_day=CUTOFF, users=np.array([0, 7]), k=6)
    assert out.dtype == np.int32 and out.tolist() == [POP_ORDER, POP_ORDER]  # user 7 has no history
    # k beyond the catalogue returns the whole catalogue
    assert popularity_last_week(u, i, d, n_items=6, cutoff_day=CUTOFF, users=np.array([0]), k=50).shape == (
        1,
        6,
    )


def test_popularity_last_week_exclusion_and_padding() -> None:
    u, i, d = _log(POP_LOG)
    exclude = sp.csr_matrix(np.array([[0, 0, 1, 0, 0, 0], [1, 1, 1, 1, 1, 0]]))
    out = popularity_last_week(
        u, i, d, n_items=6, cutoff_day=CUTOFF, users=np.array([0, 1]), k=3, exclude=exclude
    )
    # user 0 loses item 2 -> [3, 0, 4]; user 1 only has item 5 left -> [5, -1, -1]
    assert out.tolist() == [[3, 0, 4], [5, -1, -1]]


def test_trending_weights_recency() -> None:
    # weeks=1 is ages 1..7 (days 93..99). Per item (day x count):
    #   0: 99 (age 1); 1: 97 x3 (age 3); 2: never; 3: 93 (age 7, the window's first day);
    #   4: 92 x2 (age 8, just outside); 5: 61 (age 39)
    u, i, d = _log(
        [(0, 0, 99), (1, 1, 97), (2, 1, 97), (3, 1, 97), (0, 3, 93), (1, 4, 92), (2, 4, 92), (0, 5, 61)]
    )
    kw: dict[str, Any] = {"n_items": 6, "cutoff_day": CUTOFF, "users": np.array([0]), "k": 6, "weeks": 1}
    # half-life 1 day: 0 = 2^-1 = .5 > 1 = 3 * 2^-3 = .375 > 3 = 2^-7; 2, 4, 5 score 0 and go by
    # purchases in the whole log: 4 (2), 5 (1), 2 (0)
    assert trending(u, i, d, half_life_days=1.0, **kw).tolist() == [[0, 1, 3, 4, 5, 2]]
    # half-life 1000 days: weights ~1, so counts decide: 1 (~3), 0 (2^-.001) > 3 (2^-.007)
    assert trending(u, i, d, half_life_days=1000.0, **kw).tolist() == [[1, 0, 3, 4, 5, 2]]
    # weeks=6 (ages 1..42) takes in item 4 (~1.99) and item 5 (2^-.039 = .973)
    kw["weeks"] = 6
    assert trending(u, i, d, half_life_days=1000.0, **kw).tolist() == [[1, 4, 0, 3, 5, 2]]
    with pytest.raises(ValueError):
        trending(u, i, d, half_life_days=0.0, **kw)


def test_repurchase_own_items_by_recency_weighted_count_then_popularity() -> None:
    # user 9 bought item 3 on day 99 and item 1 on days 80 and 81 (on top of the popularity log)
    u, i, d = _log([*POP_LOG, (9, 3, 99), (9, 1, 80), (9, 1, 81)])
    # the extra purchases change popularity too: (week, total) is now 3: (2, 4), 2: (2, 2),
    # 0: (1, 1), 1: (0, 3), 4: (0, 3), 5: (0, 0); items 1 and 4 tie on both -> lower index first
    pop = [3, 2, 0, 1, 4, 5]
    kw: dict[str, Any] = {"n_items": 6, "cutoff_day": CUTOFF, "k": 5}
    # half-life 7: item 3 = 2^(-1/7) = .906 > item 1 = 2^(-20/7) + 2^(-19/7) = .29
    # then the popularity list without 3 and 1: 2, 0, 4
    assert repurchase(u, i, d, users=np.array([9]), **kw).tolist() == [[3, 1, 2, 0, 4]]
    # half-life 1000: item 1's two purchases (~2) beat item 3's one (~1)
    assert repurchase(u, i, d, users=np.array([9]), half_life_days=1000.0, **kw).tolist() == [[1, 3, 2, 0, 4]]
    # a user without history gets the popularity list
    assert repurchase(u, i, d, users=np.array([42]), **kw).tolist() == [pop[:5]]
    # exclusion reaches both parts: item 3 (own) and item 2 (fill) are never shown
    ex = sp.csr_matrix(np.array([[0, 0, 1, 1, 0, 0]]))
    assert repurchase(u, i, d, users=np.array([9]), exclude=ex, **kw).tolist() == [[1, 0, 4, 5, -1]]


def test_repurchase_tie_on_own_items_goes_to_lower_index() -> None:
    # user 0 bought items 4 and 2 once each on the same day: equal weight -> 2 before 4
    u, i, d = _log([(0, 4, 90), (0, 2, 90), (1, 0, 99)])
    out = repurchase(u, i, d, n_items=5, cutoff_day=CUTOFF, users=np.array([0]), k=3)
    assert out.tolist() == [[2, 4, 0]]


def _block_log(rng: np.random.Generator, per_group: int = 10, group_items: int = 5, buys: int = 3) -> Log:
    """Users ``0..per_group-1`` buy only from the first ``group_items`` items, the rest only from the
    next ``group_items``; each user buys ``buys`` distinct items of its group."""
    rows = []
    for user in range(2 * per_group):
        first = 0 if user < per_group else group_items
        for item in rng.choice(np.arange(first, first + group_items), size=buys, replace=False):
            rows.append((user, int(item), int(rng.integers(70, 99))))
    return _log(rows)


def _group(user: int, per_group: int, group_items: int) -> set[int]:
    first = 0 if user < per_group else group_items
    return set(range(first, first + group_items))


def test_als_recovers_block_structure_and_serves_cold_users_popularity() -> None:
    # 2 groups x 30 users x 20 items: the data has rank 2, so factors=2 must find the two blocks.
    # (With factors near the items per group, alpha=40 lets ALS memorise each user's own items and
    # rank the rest of its group no better than the other group: not what this test is about.)
    u, i, d = _block_log(np.random.default_rng(0), per_group=30, group_items=20, buys=4)
    users = np.arange(61)  # user 60 has no history
    kw: dict[str, Any] = {"n_items": 40, "cutoff_day": CUTOFF, "users": users, "k": 10, "factors": 2}
    out = als(u, i, d, **kw)
    for user in range(60):
        assert set(out[user].tolist()) <= _group(user, 30, 20), (user, out[user])
    pop = popularity_last_week(u, i, d, n_items=40, cutoff_day=CUTOFF, users=np.array([60]), k=10)
    assert out[60].tolist() == pop[0].tolist()

    # with bought items excluded, the top 10 are still from the user's group and never bought
    bought = sp.csr_matrix((np.ones(u.size), (u, i)), shape=(61, 40))
    out = als(u, i, d, exclude=bought, **kw)
    for user in range(60):
        assert set(out[user].tolist()) <= _group(user, 30, 20) - set(i[u == user].tolist())
    assert np.array_equal(out, als(u, i, d, exclude=bought, **kw))
    # per-user solves are independent, so using every core gives the same lists
    assert np.array_equal(out, als(u, i, d, exclude=bought, num_threads=0, **kw))


def test_als_exclusion_pads_when_everything_is_bought() -> None:
    u, i, d = _log([(0, 0, 90), (0, 1, 91), (1, 1, 92), (1, 2, 93)])
    bought = sp.csr_matrix(np.array([[1, 1, 1], [0, 1, 1]]))
    out = als(u, i, d, n_items=3, cutoff_day=CUTOFF, users=np.array([0, 1]), k=3, factors=2, exclude=bought)
    assert out.tolist() == [[-1, -1, -1], [0, -1, -1]]


Baseline = Callable[..., np.ndarray]
ALL: list[tuple[str, Baseline, dict[str, Any]]] = [
    ("popularity_last_week", popularity_last_week, {}),
    ("trending", trending, {}),
    ("repurchase", repurchase, {}),
    ("als", als, {"factors": 4, "iterations": 5}),
]


@pytest.mark.parametrize("name,fn,extra", ALL, ids=[a[0] for a in ALL])
def test_interactions_on_or_after_cutoff_change_nothing(
    name: str, fn: Baseline, extra: dict[str, Any]
) -> None:
    u, i, d = _block_log(np.random.default_rng(2))
    users = np.arange(22)  # users 20 and 21 exist only in the leaked rows
    kw: dict[str, Any] = {"n_items": 10, "cutoff_day": CUTOFF, "users": users, "k": 10, **extra}
    clean = fn(u, i, d, **kw)
    # the leak: a burst on the cutoff day itself and after, on one item, by old and new users,
    # big enough to top any popularity list and to reshape every user's history
    leak = _log([(user, 9, CUTOFF + (user % 3)) for user in range(22) for _ in range(5)])
    leaked = fn(*(np.concatenate([a, b]) for a, b in zip((u, i, d), leak, strict=True)), **kw)
    assert np.array_equal(clean, leaked), name
    # and the burst does move the baseline when it is moved one day earlier (the test can fail)
    early = (leak[0], leak[1], leak[2] - 1 - (leak[2] - CUTOFF))
    moved = fn(*(np.concatenate([a, b]) for a, b in zip((u, i, d), early, strict=True)), **kw)
    assert not np.array_equal(clean, moved), name


@pytest.mark.parametrize("name,fn,extra", ALL, ids=[a[0] for a in ALL])
def test_deterministic_and_independent_of_log_order(name: str, fn: Baseline, extra: dict[str, Any]) -> None:
    u, i, d = _block_log(np.random.default_rng(3))
    kw: dict[str, Any] = {"n_items": 10, "cutoff_day": CUTOFF, "users": np.arange(20), "k": 6, **extra}
    first = fn(u, i, d, **kw)
    perm = np.random.default_rng(9).permutation(u.size)
    assert np.array_equal(first, fn(u, i, d, **kw)), name
    assert np.array_equal(first, fn(u[perm], i[perm], d[perm], **kw)), name


@pytest.mark.parametrize("name,fn,extra", ALL, ids=[a[0] for a in ALL])
def test_bad_inputs_are_refused(name: str, fn: Baseline, extra: dict[str, Any]) -> None:
    u, i, d = _log([(0, 1, 90), (1, 2, 91)])
    kw: dict[str, Any] = {"n_items": 3, "cutoff_day": CUTOFF, "k": 2, **extra}
    with pytest.raises(ValueError):
        fn(u, i, d, users=np.array([0, 0]), **kw)  # duplicated test user
    with pytest.raises(ValueError):
        fn(u, i + 5, d, users=np.array([0]), **kw)  # item outside the catalogue
    with pytest.raises(ValueError):
        fn(u, i, d[:1], users=np.array([0]), **kw)  # misaligned arrays
    with pytest.raises(ValueError):
        fn(u, i, d, users=np.array([0]), exclude=sp.csr_matrix((2, 3)), **kw)  # exclude rows != users
