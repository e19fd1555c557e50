"""Timing helpers shared by the benchmark scripts (pure Python: usable from a torch-only env)."""

from __future__ import annotations

import statistics
import time


def timed(fn, warmup: int, repeats: int) -> list[float]:
    """Seconds of ``repeats`` calls of ``fn`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def median_ms(fn, repeats: int, warmup: int = 1) -> float:
    """Median milliseconds of ``fn`` over ``repeats`` runs after ``warmup`` runs."""
    return statistics.median(timed(fn, warmup, repeats)) * 1e3


def interleaved_ms(fns: dict, rounds: int, warmup: int = 1) -> dict:
    """Median milliseconds of each of ``fns`` (name -> callable), called in turn for
    ``rounds`` rounds: on a shared machine A and B then see the same load."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t) * 1e3 for name, t in times.items()}
