"""Image grids for reports and TensorBoard."""

from __future__ import annotations

import os

import numpy as np
from PIL import Image


def image_grid(images: np.ndarray, cols: int, pad: int = 2, fill: int = 255) -> np.ndarray:
    """images: uint8[N, H, W, 3] -> uint8[rows*(H+pad)+pad, cols*(W+pad)+pad, 3]."""
    images = np.asarray(images)
    n, h, w, c = images.shape
    cols = max(1, min(cols, n))
    rows = -(-n // cols)
    grid = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, c), fill, np.uint8)
    for i, img in enumerate(images):
        r, k = divmod(i, cols)
        y, x = pad + r * (h + pad), pad + k * (w + pad)
        grid[y : y + h, x : x + w] = img
    return grid


def save_png(image: np.ndarray, path: str, scale: int = 1) -> str:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    pil = Image.fromarray(np.asarray(image, np.uint8))
    if scale > 1:
        pil = pil.resize((pil.width * scale, pil.height * scale), Image.NEAREST)
    pil.save(path)
    return path
