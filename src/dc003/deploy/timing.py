"""Latency statistics of a callable: warm-up calls, then one timed call per repetition (perf_counter)."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np


def latency_ms(fn: Callable[[int], object], warmup: int, repetitions: int) -> dict[str, float]:
    """``fn(i)`` is called ``warmup`` times untimed, then ``repetitions`` times timed (``i`` = call number,
    so each call can take a different input). Returns p50 / p95 / p99 / mean / min in milliseconds."""
    for i in range(warmup):
        fn(i)
    times = np.empty(repetitions)
    for i in range(repetitions):
        start = time.perf_counter()
        fn(warmup + i)
        times[i] = time.perf_counter() - start
    ms = times * 1e3
    return {
        "p50": float(np.percentile(ms, 50)),
        "p95": float(np.percentile(ms, 95)),
        "p99": float(np.percentile(ms, 99)),
        "mean": float(ms.mean()),
        "min": float(ms.min()),
        "n": repetitions,
    }


def ratio(baseline: dict[str, float], measured: dict[str, float]) -> float:
    """How many times faster ``measured`` is than ``baseline`` at the median."""
    return baseline["p50"] / measured["p50"] if measured["p50"] > 0 else float("nan")
