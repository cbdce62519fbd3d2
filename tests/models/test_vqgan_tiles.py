"""Distinct tiles: a tile-local encoder fed each distinct tile once gives the same
latents, losses and gradients as fed every tile."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from liquid_jax.models import VQGAN, VQGANConfig
from liquid_jax.models.vqgan_tiles import distinct_tiles, from_tiles
from tests.tiny import tiny_vqgan_config

CONFIG = tiny_vqgan_config(resolution=16, encode_tile=1)


def _repetitive_images(seed=0) -> np.ndarray:
    """float32[3, 16, 16, 3]: every 2x2 tile one of 9 noise tiles (flat tiles would make
    GroupNorm's gradient a ratio of rounding errors in either path)."""
    rng = np.random.default_rng(seed)
    palette = rng.uniform(-1, 1, (9, 2, 2, 3)).astype(np.float32)
    choice = rng.permutation(np.arange(3 * 8 * 8) % 9)
    return from_tiles(palette[choice], 3, 8, 8)


def test_distinct_tiles_rebuild_the_batch_and_respect_the_capacity():
    images = _repetitive_images()
    tiles, index = distinct_tiles(images, 2, capacity=16)
    assert tiles.shape == (16, 2, 2, 3) and index.shape == (3, 8, 8)
    rebuilt = from_tiles(tiles[index.reshape(-1)], 3, 8, 8)
    np.testing.assert_array_equal(rebuilt, images)
    assert index.max() == 8 and not tiles[9:].any()  # 9 distinct tiles, then zeros
    assert distinct_tiles(images, 2, capacity=8) is None


@pytest.mark.parametrize("decode_tile", [0, 1])
def test_training_forward_and_gradients_equal_with_distinct_tiles(decode_tile):
    """decode_tile 1: the decoder, too, runs on the distinct tiles alone."""
    config = VQGANConfig(**{**CONFIG.__dict__, "decode_tile": decode_tile})
    model = nnx.jit(lambda: VQGAN(config, rngs=nnx.Rngs(0)))()
    images = jnp.asarray(_repetitive_images(1))
    tiles, index = distinct_tiles(np.asarray(images), 2, capacity=12)
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)

    def loss(p, *found):
        recon, aux = nnx.merge(graphdef, p, rest)(images, *found)
        return jnp.mean((recon - images) ** 2) + aux["commitment_loss"], aux["latents"]

    (plain, z_plain), g_plain = jax.value_and_grad(loss, has_aux=True)(params)
    (tiled, z_tiled), g_tiled = jax.value_and_grad(loss, has_aux=True)(
        params, jnp.asarray(tiles), jnp.asarray(index)
    )
    # Equal up to rounding (convolutions over 12 tiles and over 192 block differently,
    # and GroupNorm over 1x1 maps magnifies it).
    np.testing.assert_allclose(z_tiled, z_plain, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(tiled, plain, rtol=1e-5)
    # Rounding again, grown through the encoder's GroupNorms towards its input (0.5% at
    # conv_in); parameters whose true gradient is zero (biases before a norm) differ in
    # noise, so the test compares whole gradients.
    # On some CPUs the two roundings pick a different code for one near-tied latent
    # (0.7% of the gradient, the same in float64); a wrong tile weighting moves it by
    # tens of percent.
    diff = jax.tree.map(lambda a, b: b - a, g_plain, g_tiled)
    assert optax.global_norm(diff) <= 1e-2 * optax.global_norm(g_plain)
    encoder_diff = optax.global_norm(diff["encoder"])
    assert encoder_diff <= 1e-2 * optax.global_norm(g_plain["encoder"])
    # The encoder saw 12 tiles instead of 192, and its gradient is not zero.
    encoder_grad = g_tiled["encoder"]["conv_in"]["kernel"][...]
    assert np.abs(np.asarray(encoder_grad)).max() > 0
