"""Taming's VQGAN building blocks in NHWC: ResnetBlock, AttnBlock, Down/Upsample.

Attribute names are taming's (``norm1``, ``conv1``, ``nin_shortcut``, ``q``/``k``/``v``/
``proj_out``, ...), so a parameter's path is its taming ``state_dict`` key with NNX leaf
names (``kernel`` for ``weight`` of a conv, ``scale`` for ``weight`` of a GroupNorm).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from liquid_jax.models.vqgan_config import GROUPS

CONV_AXES = (None, None, "conv_in", "conv_out")
CHANNEL_AXES = ("conv_out",)
_PAD_SAME_3X3 = ((1, 1), (1, 1))
# Taming pads only bottom/right before its stride-2 conv (torch has no asymmetric pad).
_PAD_DOWN = ((0, 1), (0, 1))


class TamingConv(nnx.Conv):
    """``nnx.Conv`` that skips the zero taps of a padded 3x3 conv on a 1x1 feature map.

    With ``encode_tile=1`` the encoder's lowest level sees 1x1 maps, where a padded 3x3
    convolution reads only its centre tap: one matmul instead of nine (same result).
    """

    def __call__(self, x: jax.Array) -> jax.Array:
        centre_only = self.kernel_size == (3, 3) and self.padding == _PAD_SAME_3X3
        if centre_only and x.shape[-3:-1] == (1, 1):
            dtype = self.dtype or x.dtype
            y = x.astype(dtype) @ self.kernel[1, 1].astype(dtype)
            return y + self.bias[...].astype(dtype) if self.bias is not None else y
        return super().__call__(x)


def conv(c_in: int, c_out: int, k: int, *, rngs: nnx.Rngs, dtype, stride: int = 1, padding=None):
    """A ``k x k`` convolution with taming's padding and logical axis names."""
    if padding is None:
        padding = _PAD_SAME_3X3 if k == 3 else "VALID"
    return TamingConv(
        c_in,
        c_out,
        (k, k),
        strides=stride,
        padding=padding,
        dtype=dtype,
        rngs=rngs,
        kernel_metadata={"out_sharding": CONV_AXES},
        bias_metadata={"out_sharding": CHANNEL_AXES},
    )


def norm(channels: int, *, rngs: nnx.Rngs, dtype) -> nnx.GroupNorm:
    """Taming's ``Normalize``: GroupNorm(32, eps 1e-6) with an affine transform."""
    return nnx.GroupNorm(
        channels,
        num_groups=GROUPS,
        epsilon=1e-6,
        dtype=dtype,
        # Two-pass variance: E[x^2] - E[x]^2 loses digits on large activations.
        use_fast_variance=False,
        rngs=rngs,
        scale_metadata={"out_sharding": CHANNEL_AXES},
        bias_metadata={"out_sharding": CHANNEL_AXES},
    )


class ResnetBlock(nnx.Module):
    """norm-swish-conv twice, plus a 1x1 ``nin_shortcut`` when the width changes."""

    def __init__(self, c_in: int, c_out: int, *, dropout: float, rngs: nnx.Rngs, dtype):
        self.in_channels, self.out_channels = c_in, c_out
        self.norm1 = norm(c_in, rngs=rngs, dtype=dtype)
        self.conv1 = conv(c_in, c_out, 3, rngs=rngs, dtype=dtype)
        self.norm2 = norm(c_out, rngs=rngs, dtype=dtype)
        # Without dropout no RNG stream is stored, so the state holds parameters only.
        self.dropout = nnx.Dropout(dropout, rngs=rngs if dropout > 0 else None)
        self.conv2 = conv(c_out, c_out, 3, rngs=rngs, dtype=dtype)
        if c_in != c_out:
            self.nin_shortcut = conv(c_in, c_out, 1, rngs=rngs, dtype=dtype)

    def __call__(self, x: jax.Array, *, deterministic: bool | None = None) -> jax.Array:
        """x: float[B, H, W, c_in] -> float[B, H, W, c_out]."""
        h = self.conv1(nnx.swish(self.norm1(x)))
        h = self.dropout(nnx.swish(self.norm2(h)), deterministic=deterministic)
        h = self.conv2(h)
        if self.in_channels != self.out_channels:
            x = self.nin_shortcut(x)
        return x + h


class AttnBlock(nnx.Module):
    """Taming's vanilla attention: one head over all H*W positions, 1x1-conv q/k/v/proj."""

    def __init__(self, channels: int, *, rngs: nnx.Rngs, dtype):
        self.norm = norm(channels, rngs=rngs, dtype=dtype)
        self.q = conv(channels, channels, 1, rngs=rngs, dtype=dtype)
        self.k = conv(channels, channels, 1, rngs=rngs, dtype=dtype)
        self.v = conv(channels, channels, 1, rngs=rngs, dtype=dtype)
        self.proj_out = conv(channels, channels, 1, rngs=rngs, dtype=dtype)

    def __call__(self, x: jax.Array) -> jax.Array:
        """x: float[B, H, W, C] -> float[B, H, W, C]."""
        b, h, w, c = x.shape
        y = self.norm(x)
        # [B, H*W, heads=1, C]; the default scale 1/sqrt(C) is taming's int(c) ** -0.5.
        q, k, v = (f(y).reshape(b, h * w, 1, c) for f in (self.q, self.k, self.v))
        out = jax.nn.dot_product_attention(q, k, v)
        return x + self.proj_out(out.reshape(b, h, w, c))


class Downsample(nnx.Module):
    """Halves H and W: pad (0, 1) bottom/right, then a 3x3 stride-2 conv."""

    def __init__(self, channels: int, *, rngs: nnx.Rngs, dtype):
        self.conv = conv(channels, channels, 3, stride=2, padding=_PAD_DOWN, rngs=rngs, dtype=dtype)

    def __call__(self, x: jax.Array) -> jax.Array:
        """x: float[B, H, W, C] -> float[B, H/2, W/2, C]."""
        return self.conv(x)


class Upsample(nnx.Module):
    """Doubles H and W: nearest-neighbour x2, then a 3x3 conv."""

    def __init__(self, channels: int, *, rngs: nnx.Rngs, dtype):
        self.conv = conv(channels, channels, 3, rngs=rngs, dtype=dtype)

    def __call__(self, x: jax.Array) -> jax.Array:
        """x: float[B, H, W, C] -> float[B, 2H, 2W, C]."""
        x = jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)
        return self.conv(x)


class MidBlock(nnx.Module):
    """``block_1`` -> ``attn_1`` -> ``block_2`` at the lowest resolution."""

    def __init__(self, channels: int, *, dropout: float, rngs: nnx.Rngs, dtype):
        kw = dict(dropout=dropout, rngs=rngs, dtype=dtype)
        self.block_1 = ResnetBlock(channels, channels, **kw)
        self.attn_1 = AttnBlock(channels, rngs=rngs, dtype=dtype)
        self.block_2 = ResnetBlock(channels, channels, **kw)

    def __call__(self, x: jax.Array, *, deterministic: bool | None = None) -> jax.Array:
        x = self.block_1(x, deterministic=deterministic)
        return self.block_2(self.attn_1(x), deterministic=deterministic)
