"""Shared timing helper for the side-by-side benchmarks."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def time_call(fn: Callable[[], object], warmup: int = 2, repeats: int = 5) -> float:
    """Median wall seconds of ``fn()`` (which must block until its work is done)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def report(title: str, rows: list[tuple[str, float, str]], ours: str, peer: str) -> None:
    """rows: (name, seconds, unit note); prints times and the peer/ours speed ratio."""
    print(f"\n== {title}")
    for name, seconds, note in rows:
        print(f"  {name:<28s} {seconds * 1e3:10.1f} ms  {note}")
    t = dict((n, s) for n, s, _ in rows)
    print(f"  speed-up of {ours} over {peer}: {t[peer] / t[ours]:.2f}x")
