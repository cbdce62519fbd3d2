"""In-memory image sets for tokenizer training, and deterministic per-step batches.

A VQGAN trains on small images that fit in host memory (uint8), so the batch for step
``s`` is a pure function of ``(seed, s)``: resuming at step ``s`` needs nothing but ``s``.
"""

from __future__ import annotations

import jax
import numpy as np
from absl import logging

from liquid_jax import fileio
from liquid_jax.data.images import ImageError, load_image
from liquid_jax.errors import ConfigError, InputError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")


def batch_indices(num_images: int, batch_size: int, seed: int, step: int) -> np.ndarray:
    """Indices of the global batch at ``step``: int64[batch_size], no repeats within it."""
    rng = np.random.default_rng([seed, step])
    return rng.choice(num_images, size=batch_size, replace=batch_size > num_images)


def host_batch(images: np.ndarray, batch_size: int, seed: int, step: int) -> np.ndarray:
    """This process's rows of the step's batch, as float32[B/P, H, W, 3] in [-1, 1]."""
    nproc = jax.process_count()
    if batch_size % nproc:
        raise ConfigError(f"batch size {batch_size} does not divide over {nproc} processes")
    idx = batch_indices(len(images), batch_size, seed, step)
    idx = idx.reshape(nproc, -1)[jax.process_index()]
    return images[idx].astype(np.float32) / 127.5 - 1.0


def load_image_folder(path: str, size: int, limit: int | None = None) -> np.ndarray:
    """All images under ``path`` (local or a URL) -> uint8[N, size, size, 3] (Liquid's
    pre-processing).

    Unreadable files are skipped with a logged reason; an empty result is an error.
    """
    files = sorted(
        f for f in fileio.glob(fileio.join(path, "**", "*")) if f.lower().endswith(IMAGE_EXTENSIONS)
    )[:limit]
    out, skipped = [], 0
    for f in files:
        try:
            out.append(load_image(f, size))
        except ImageError as e:
            skipped += 1
            logging.warning("skipping %s", e)
    if not out:
        raise InputError(f"{path}: no readable images ({skipped} skipped)")
    if skipped:
        logging.warning("%s: skipped %d of %d files", path, skipped, len(files))
    return np.stack([np.round((x + 1.0) * 127.5).astype(np.uint8) for x in out])
