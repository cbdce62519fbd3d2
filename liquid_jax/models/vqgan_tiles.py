"""Tiles of an image grid, and the distinct tiles of a batch.

With ``encode_tile`` the encoder sees each tile of ``encode_tile x encode_tile`` codes on
its own, so a tile's latents depend on its pixels alone. Images with large flat areas
repeat tiles heavily (a batch of 16 shapes-world images holds about 90 distinct 4x4
tiles among 1024), so each distinct tile is encoded once: in training ``distinct_tiles``
finds them on the host and ``VQGAN.__call__(images, tiles, index)`` encodes them and
scatters the latents back to the grid; ``encode_distinct_tiles`` gives the codes of a
whole set of images the same way.
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


def unique_tiles(images: np.ndarray, p: int) -> tuple[np.ndarray, np.ndarray]:
    """images: [B, n*p, m*p, C] on the host -> ``(tiles [K, p, p, C], index int32[B, n,
    m])``, the K distinct p x p tiles and which one stands at each grid cell."""
    b, height, width, c = images.shape
    n, m = height // p, width // p
    flat = np.ascontiguousarray(to_tiles(np.asarray(images), p)).reshape(b * n * m, -1)
    rows, index = np.unique(flat, axis=0, return_inverse=True)
    return rows.reshape(-1, p, p, c), index.reshape(b, n, m).astype(np.int32)


def distinct_tiles(images: np.ndarray, p: int, capacity: int):
    """The distinct p x p tiles of a batch, or None when there are more than ``capacity``.

    images: float[B, n*p, m*p, C] on the host. Returns ``(tiles float[capacity, p, p, C],
    index int32[B, n, m])``: ``tiles[index[b, i, j]]`` is the tile at grid cell (i, j) of
    image b; rows past the distinct ones are zeros (encoded, never read). The fixed
    ``capacity`` keeps one compiled shape for every batch.
    """
    rows, index = unique_tiles(images, p)
    if len(rows) > capacity:
        return None
    tiles = np.zeros((capacity, *rows.shape[1:]), rows.dtype)
    tiles[: len(rows)] = rows
    return tiles, index


def encode_distinct_tiles(encode, images: np.ndarray, p: int, batch_size: int) -> np.ndarray:
    """Codes of ``images`` uint8[N, h, w, 3] from a tile-local encoder, each distinct p x p
    tile encoded once. ``encode(uint8[batch_size, p, p, 3]) -> codes [batch_size, t, t]``
    encodes tiles as p x p images. Returns codes [N, h/p*t, w/p*t]."""
    tiles, index = unique_tiles(images, p)
    codes = []
    for i in range(0, len(tiles), batch_size):
        batch = np.zeros((batch_size, p, p, 3), np.uint8)
        batch[: len(tiles[i : i + batch_size])] = tiles[i : i + batch_size]
        codes.append(np.asarray(encode(batch))[: len(tiles) - i])
    per_tile = np.concatenate(codes)[index.reshape(-1), ..., None]  # [N*n*m, t, t, 1]
    return from_tiles(per_tile, *index.shape)[..., 0]
