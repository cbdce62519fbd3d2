"""Image reconstruction quality: PSNR, SSIM, codebook usage and perplexity."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp


def psnr(a: jax.Array, b: jax.Array, data_range: float = 2.0) -> jax.Array:
    """Peak signal-to-noise ratio in dB per image. a, b: float[B, H, W, C] in [-1, 1]."""
    mse = jnp.mean((a.astype(jnp.float32) - b.astype(jnp.float32)) ** 2, axis=(1, 2, 3))
    return 10.0 * jnp.log10(data_range**2 / jnp.maximum(mse, 1e-12))


def ssim(a: jax.Array, b: jax.Array, data_range: float = 2.0, window: int = 7) -> jax.Array:
    """Mean structural similarity per image (uniform window, as scikit-image's default).

    a, b: float[B, H, W, C]; returns float32[B].
    """
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2

    def blur(x):
        k = jnp.ones((window, window, 1, 1), jnp.float32) / window**2
        x = jnp.moveaxis(x, -1, 0)[..., None]  # [C, B, H, W, 1] -> conv per channel
        c, bsz, h, w, _ = x.shape
        y = jax.lax.conv_general_dilated(
            x.reshape(c * bsz, h, w, 1),
            k,
            (1, 1),
            "VALID",
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
        )
        return jnp.moveaxis(y.reshape(c, bsz, *y.shape[1:3]), 0, -1)

    a, b = a.astype(jnp.float32), b.astype(jnp.float32)
    mu_a, mu_b = blur(a), blur(b)
    # Unbiased variances, as scikit-image computes them.
    n = window**2
    cov = n / (n - 1)
    var_a = cov * (blur(a * a) - mu_a**2)
    var_b = cov * (blur(b * b) - mu_b**2)
    cov_ab = cov * (blur(a * b) - mu_a * mu_b)
    s = ((2 * mu_a * mu_b + c1) * (2 * cov_ab + c2)) / (
        (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    )
    return jnp.mean(s, axis=(1, 2, 3))


@functools.partial(jax.jit, static_argnums=1)
def codebook_stats(codes: jax.Array, n_embed: int) -> dict[str, jax.Array]:
    """Fraction of codes used and perplexity (exp of code entropy) of a batch of codes."""
    counts = jnp.bincount(codes.reshape(-1), length=n_embed).astype(jnp.float32)
    p = counts / jnp.maximum(counts.sum(), 1.0)
    entropy = -jnp.sum(jnp.where(p > 0, p * jnp.log(jnp.where(p > 0, p, 1.0)), 0.0))
    return {"codebook_usage": jnp.mean(counts > 0), "codebook_perplexity": jnp.exp(entropy)}
