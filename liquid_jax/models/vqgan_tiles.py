"""Tiles of an image grid, and the distinct tiles of a batch.

With ``encode_tile`` the encoder sees each tile of ``encode_tile x encode_tile`` codes on
its own, so a tile's latents depend on its pixels alone. Images with large flat areas
repeat tiles heavily (a batch of 16 shapes-world images holds about 90 distinct 4x4
tiles among 1024), and training then encodes each distinct tile once:
``distinct_tiles`` finds them on the host, ``VQGAN.encode_tile_latents`` encodes them and
scatters the latents back to the grid.
"""

from __future__ import annotations

import jax
import numpy as np


def to_tiles(x: jax.Array, p: int) -> jax.Array:
    """float[B, n*p, m*p, C] -> float[B*n*m, p, p, C]: each p x p tile its own image."""
    b, height, width, c = x.shape
    n, m = height // p, width // p
    return x.reshape(b, n, p, m, p, c).transpose(0, 1, 3, 2, 4, 5).reshape(-1, p, p, c)


def from_tiles(tiles: jax.Array, b: int, n: int, m: int) -> jax.Array:
    """``to_tiles``'s inverse for tiles of any size: float[B*n*m, q, q, C] ->
    float[B, n*q, m*q, C]."""
    q, c = tiles.shape[1], tiles.shape[-1]
    x = tiles.reshape(b, n, m, q, q, c).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(b, n * q, m * q, c)


def distinct_tiles(images: np.ndarray, p: int, capacity: int):
    """The distinct p x p tiles of a batch, or None when there are more than ``capacity``.

    images: float[B, n*p, m*p, C] on the host. Returns ``(tiles float[capacity, p, p, C],
    index int32[B, n, m])``: ``tiles[index[b, i, j]]`` is the tile at grid cell (i, j) of
    image b; rows past the distinct ones are zeros (encoded, never read). The fixed
    ``capacity`` keeps one compiled shape for every batch.
    """
    b, height, width, c = images.shape
    n, m = height // p, width // p
    flat = np.ascontiguousarray(to_tiles(np.asarray(images), p)).reshape(b * n * m, -1)
    rows, index = np.unique(flat, axis=0, return_inverse=True)
    if len(rows) > capacity:
        return None
    tiles = np.zeros((capacity, p * p * c), flat.dtype)
    tiles[: len(rows)] = rows
    return tiles.reshape(capacity, p, p, c), index.reshape(b, n, m).astype(np.int32)
