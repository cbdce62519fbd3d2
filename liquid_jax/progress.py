"""The progress line of every long loop: training, encoding, sampling, the demo's stages.

    Progress(total=5000, unit="step")  ->  "1200/5000 steps (24%) 3.10 step/s ETA 0:20:26 ..."

Logged by process 0 only, at most every ``every_s`` seconds and always at the end. ETAs
and durations read ``H:MM:SS``, with whole days in front past 24 hours (``clock``).
"""

from __future__ import annotations

import math
import time

import jax
from absl import logging


def clock(seconds: float) -> str:
    """A duration as ``H:MM:SS``, ``2d 03:04:05`` past a day, ``?`` when not finite."""
    if not math.isfinite(seconds):
        return "?"
    days, rest = divmod(max(0, int(round(seconds))), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{hours:d}:{minutes:02d}:{secs:02d}"


class Progress:
    """``done/total`` with rate and ETA, logged at most every ``every_s`` seconds.

    ``label`` goes in front of the line (e.g. ``"sample t2i"``), ``note`` after the ETA.
    A ``Progress`` is also the samplers' ``progress(done, total)`` callback.
    """

    def __init__(
        self,
        total: int,
        start: int = 0,
        unit: str = "step",
        every_s: float = 10.0,
        label: str = "",
        note: str = "",
    ):
        self.total, self.start, self.unit, self.every_s = total, start, unit, every_s
        self.label, self.note = label, note
        self._t0 = time.perf_counter()
        self._last = -math.inf

    def rate(self, done: int) -> float:
        elapsed = time.perf_counter() - self._t0
        return (done - self.start) / elapsed if elapsed > 0 else 0.0

    def line(self, done: int, extra: str = "") -> str:
        rate = self.rate(done)
        left = (self.total - done) / rate if rate > 0 else math.inf
        pct = 100.0 * done / max(self.total, 1)
        head = f"{self.label}: " if self.label else ""
        tail = " ".join(x for x in (self.note, extra) if x)
        line = f"{head}{done}/{self.total} {self.unit}s ({pct:.0f}%) {rate:.2f} {self.unit}/s"
        return f"{line} ETA {clock(left)} {tail}".rstrip()

    def update(self, done: int, extra: str = "", force: bool = False) -> None:
        now = time.perf_counter()
        if force or now - self._last >= self.every_s or done >= self.total:
            self._last = now
            if jax.process_index() == 0:
                logging.info("%s", self.line(done, extra))

    def __call__(self, done: int, total: int) -> None:
        self.total = total
        self.update(done)
