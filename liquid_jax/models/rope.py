"""Rotary position embeddings, HF layout (``rotate_half``: first half pairs with second half).

HF checkpoints store q/k projections for this layout, so conversion needs no
permutation of the head dimension.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from liquid_jax.models.spec import RopeScaling


def inverse_frequencies(
    head_dim: int, theta: float, scaling: RopeScaling | None = None
) -> np.ndarray:
    """float32[head_dim // 2]: the rotation speed of each frequency pair."""
    exponents = np.arange(0, head_dim, 2, dtype=np.float32) / np.float32(head_dim)
    inv_freq = (1.0 / (theta**exponents)).astype(np.float32)
    if scaling is None:
        return inv_freq
    # Llama 3: slow down low frequencies by `factor`, keep high ones, blend in between.
    s = scaling
    low_freq_wavelen = s.original_max_position_embeddings / s.low_freq_factor
    high_freq_wavelen = s.original_max_position_embeddings / s.high_freq_factor
    wavelen = 2 * math.pi / inv_freq
    scaled = np.where(wavelen > low_freq_wavelen, inv_freq / s.factor, inv_freq)
    smooth = (s.original_max_position_embeddings / wavelen - s.low_freq_factor) / (
        s.high_freq_factor - s.low_freq_factor
    )
    smoothed = (1 - smooth) * scaled / s.factor + smooth * scaled
    medium = (wavelen >= high_freq_wavelen) & (wavelen <= low_freq_wavelen)
    return np.where(medium, smoothed, scaled).astype(np.float32)


def rope_tables(positions: jax.Array, inv_freq: np.ndarray, dtype) -> tuple[jax.Array, jax.Array]:
    """positions: int32[B, T] -> (cos, sin), each ``dtype[B, T, head_dim]``.

    Angles are computed in float32 and only then cast, as HF does.
    """
    angles = positions.astype(jnp.float32)[..., None] * jnp.asarray(inv_freq)
    angles = jnp.concatenate([angles, angles], axis=-1)
    return jnp.cos(angles).astype(dtype), jnp.sin(angles).astype(dtype)


def apply_rope(x_bthd: jax.Array, cos: jax.Array, sin: jax.Array) -> jax.Array:
    """x: [B, T, H, head_dim]; cos/sin: [B, T, head_dim] -> same shape as x."""
    half = x_bthd.shape[-1] // 2
    rotated = jnp.concatenate([-x_bthd[..., half:], x_bthd[..., :half]], axis=-1)
    return x_bthd * cos[:, :, None, :] + rotated * sin[:, :, None, :]
