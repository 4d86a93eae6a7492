"""History pointers: for each interaction row, the slice of the same table holding the user's last
``max_history`` interactions strictly before the row's day.

The table is sorted by user then day, so the history of row i ends where i's (user, day) group starts and
begins ``max_history`` rows earlier (or at the user's first row). Two int64 columns, O(rows) memory, no
copies of sequences: a training example is ``interactions[hist_start[i]:hist_end[i]]``.
"""

from __future__ import annotations

import numpy as np


def group_starts(*keys: np.ndarray) -> np.ndarray:
    """Index of the first row of each row's run of equal ``keys`` (the table must be sorted by them)."""
    n = len(keys[0])
    new = np.ones(n, dtype=bool)
    if n > 1:
        changed = np.zeros(n - 1, dtype=bool)
        for key in keys:
            changed |= key[1:] != key[:-1]
        new[1:] = changed
    starts = np.where(new, np.arange(n, dtype=np.int64), 0)
    return np.maximum.accumulate(starts) if n else starts


def history_pointers(user: np.ndarray, day: np.ndarray, max_history: int) -> tuple[np.ndarray, np.ndarray]:
    """``(hist_start, hist_end)`` for rows sorted by (user, day)."""
    user_start = group_starts(user)
    hist_end = group_starts(user, day)
    hist_start = np.maximum(user_start, hist_end - max_history)
    return hist_start.astype(np.int64), hist_end.astype(np.int64)
