"""Metrics: JSON lines and TensorBoard event files in the workdir, written on process 0."""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Mapping

import jax
import numpy as np
from absl import logging

METRICS_FILE = "metrics.jsonl"


def _scalar(value) -> float:
    value = np.asarray(jax.device_get(value))
    return float(value.reshape(()) if value.size == 1 else value.mean())


class MetricWriter:
    """Writes ``DIR/metrics.jsonl`` (one object per logged step) and TensorBoard events.

    After a resume the JSON-lines file is truncated to the resumed step first, so the
    file always reads as one uninterrupted run.
    """

    def __init__(self, workdir: str, resume_step: int | None = None, tensorboard: bool = True):
        self.enabled = jax.process_index() == 0
        self.path = os.path.join(workdir, METRICS_FILE)
        self._tb = None
        if not self.enabled:
            return
        os.makedirs(workdir, exist_ok=True)
        self._truncate_after(resume_step or 0)
        if tensorboard:
            from tensorboardX import SummaryWriter

            self._tb = SummaryWriter(os.path.join(workdir, "tensorboard"))

    def _truncate_after(self, step: int) -> None:
        if not os.path.exists(self.path):
            return
        with open(self.path) as f:
            kept = [line for line in f if line.strip() and json.loads(line).get("step", 0) <= step]
        with open(self.path, "w") as f:
            f.writelines(kept)

    def write_scalars(self, step: int, scalars: Mapping[str, object]) -> dict[str, float]:
        values = {k: _scalar(v) for k, v in scalars.items()}
        if self.enabled:
            with open(self.path, "a") as f:
                # JSON has no NaN: a metric with no value this step (e.g. a task absent
                # from the batch) is written as null.
                row = {k: v if math.isfinite(v) else None for k, v in values.items()}
                f.write(json.dumps({"step": int(step), **row}) + "\n")
            if self._tb is not None:
                for k, v in values.items():
                    if math.isfinite(v):
                        self._tb.add_scalar(k, v, step)
        return values

    def write_images(self, step: int, images: Mapping[str, np.ndarray]) -> None:
        """images: uint8[H, W, 3] each."""
        if self.enabled and self._tb is not None:
            for k, v in images.items():
                self._tb.add_image(k, np.asarray(v), step, dataformats="HWC")

    def flush(self) -> None:
        if self._tb is not None:
            self._tb.flush()

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()


class Progress:
    """A progress line with rate and ETA, logged at most every ``every_s`` seconds."""

    def __init__(self, total: int, start: int = 0, unit: str = "step", every_s: float = 10.0):
        self.total, self.start, self.unit, self.every_s = total, start, unit, every_s
        self._t0 = time.perf_counter()
        self._last = -math.inf

    def rate(self, done: int) -> float:
        elapsed = time.perf_counter() - self._t0
        return (done - self.start) / elapsed if elapsed > 0 else 0.0

    def line(self, done: int, extra: str = "") -> str:
        rate = self.rate(done)
        left = (self.total - done) / rate if rate > 0 else math.inf
        eta = time.strftime("%H:%M:%S", time.gmtime(left)) if math.isfinite(left) else "?"
        pct = 100.0 * done / max(self.total, 1)
        head = f"{done}/{self.total} {self.unit}s ({pct:.0f}%)"
        return f"{head} {rate:.2f} {self.unit}/s ETA {eta} {extra}"

    def update(self, done: int, extra: str = "", force: bool = False) -> None:
        now = time.perf_counter()
        if force or now - self._last >= self.every_s or done >= self.total:
            self._last = now
            if jax.process_index() == 0:
                logging.info("%s", self.line(done, extra).rstrip())
