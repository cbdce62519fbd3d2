"""Metrics: JSON lines and TensorBoard event files in the workdir, written on process 0."""

from __future__ import annotations

import importlib.util
import json
import math
from collections.abc import Mapping

import jax
import numpy as np
from absl import logging

from liquid_jax import fileio
from liquid_jax.runs.layout import METRICS, TENSORBOARD

# tensorboardX writes event files at these URL schemes through these modules (its own
# writers, not epath's); at any other URL TensorBoard is skipped.
TENSORBOARD_URL_MODULES = {"gs": "google.cloud.storage", "s3": "boto3"}


def _tensorboard_unsupported(logdir: str) -> str | None:
    """Why tensorboardX cannot write event files to ``logdir``, or None when it can."""
    if not fileio.is_url(logdir):
        return None
    scheme = logdir.split("://", 1)[0]
    module = TENSORBOARD_URL_MODULES.get(scheme)
    if module is None:
        return f"tensorboardX has no writer for {scheme}:// URLs"
    try:
        found = importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a missing parent package (google.cloud)
        found = False
    return None if found else f"tensorboardX writes {scheme}:// through {module}, not installed"


def _scalar(value) -> float:
    value = np.asarray(jax.device_get(value))
    return float(value.reshape(()) if value.size == 1 else value.mean())


class MetricWriter:
    """Writes ``DIR/metrics.jsonl`` (one object per logged step) and TensorBoard events.

    After a resume the JSON-lines file is truncated to the resumed step first, so the
    file always reads as one uninterrupted run. ``workdir`` may be a URL (``gs://``):
    each write then rewrites the object (object stores cannot append), and TensorBoard
    is skipped with a warning where tensorboardX cannot write that URL.
    """

    def __init__(self, workdir: str, resume_step: int | None = None, tensorboard: bool = True):
        self.enabled = jax.process_index() == 0
        self.path = fileio.join(workdir, METRICS)
        self._tb = None
        if not self.enabled:
            return
        fileio.makedirs(workdir)
        self._truncate_after(resume_step or 0)
        logdir = fileio.join(workdir, TENSORBOARD)
        why_not = _tensorboard_unsupported(logdir) if tensorboard else None
        if why_not:
            logging.warning("metrics: no TensorBoard events at %s (%s)", logdir, why_not)
        elif tensorboard:
            # tensorboardX (and protobuf behind it) only when events are written.
            from tensorboardX import SummaryWriter

            self._tb = SummaryWriter(logdir)

    def _truncate_after(self, step: int) -> None:
        if not fileio.exists(self.path):
            return
        with fileio.open(self.path) as f:
            kept = [line for line in f if line.strip() and json.loads(line).get("step", 0) <= step]
        with fileio.open(self.path, "w") as f:
            f.writelines(kept)

    def write_scalars(self, step: int, scalars: Mapping[str, object]) -> dict[str, float]:
        values = {k: _scalar(v) for k, v in scalars.items()}
        if self.enabled:
            # JSON has no NaN: a metric with no value this step (e.g. a task absent from
            # the batch) is written as null.
            row = {k: v if math.isfinite(v) else None for k, v in values.items()}
            fileio.append_text(self.path, json.dumps({"step": int(step), **row}) + "\n")
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
