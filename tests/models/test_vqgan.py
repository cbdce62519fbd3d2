"""The JAX VQGAN on its own: shapes, errors, quantizer maths, sharded encode/decode."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from liquid_jax.models import (
    VQGAN,
    VectorQuantizer,
    VQGANConfig,
    chameleon_vqgan,
    decode_codes,
    encode_images,
)
from liquid_jax.parallel import MeshConfig, create_sharded, make_mesh
from tests.tiny import tiny_vqgan_config

TINY = tiny_vqgan_config(attn_resolutions=(16,))


@pytest.fixture(scope="module")
def model():
    # Initialised under jit: one compiled program instead of hundreds of eager ops.
    return nnx.jit(lambda: VQGAN(TINY, rngs=nnx.Rngs(0)))()


def _images(shape, seed=0):
    return jax.random.uniform(jax.random.key(seed), shape, minval=-1.0, maxval=1.0)


def test_chameleon_preset_sizes_without_allocating():
    cfg = chameleon_vqgan()
    assert cfg.downsample_factor == 16
    abstract = nnx.eval_shape(lambda: VQGAN(cfg, rngs=nnx.Rngs(0)))
    params = nnx.state(abstract, nnx.Param)
    n = sum(int(np.prod(v.shape)) for _, v in nnx.to_flat_state(params))
    assert 60e6 < n < 80e6, n  # taming's f16 VQGAN with 8192 x 256 codes: ~70M
    assert abstract.quantize.embedding.shape == (8192, 256)
    codes = nnx.eval_shape(
        lambda m, x: m.encode(x), abstract, jax.ShapeDtypeStruct((1, 512, 512, 3), jnp.float32)
    )
    assert codes.shape == (1, 32, 32) and codes.dtype == jnp.int32
    images = nnx.eval_shape(
        lambda m, c: m.decode(c), abstract, jax.ShapeDtypeStruct((1, 32, 48), jnp.int32)
    )
    assert images.shape == (1, 512, 768, 3)


def test_params_carry_logical_axes(model):
    assert model.encoder.conv_in.kernel.get_metadata()["out_sharding"] == (
        None, None, "conv_in", "conv_out",
    )  # fmt: skip
    assert model.quantize.embedding.get_metadata()["out_sharding"] == ("codebook", None)


def test_non_square_encode_decode_shapes(model):
    codes = encode_images(model, _images((2, 32, 48, 3)))
    assert codes.shape == (2, 16, 24) and codes.dtype == jnp.int32
    assert int(codes.min()) >= 0 and int(codes.max()) < TINY.n_embed
    images = decode_codes(model, codes)
    assert images.shape == (2, 32, 48, 3) and images.dtype == jnp.float32
    assert bool(jnp.isfinite(images).all())


@pytest.mark.parametrize("shape", [(1, 33, 32, 3), (1, 32, 31, 3), (1, 1, 32, 3)])
def test_encode_rejects_sizes_off_the_grid(model, shape):
    with pytest.raises(
        ValueError, match=r"multiples of the downsample factor 2.*" + str(shape[1:3])[1:-1]
    ):
        model.encode(jnp.zeros(shape))
    with pytest.raises(ValueError, match="downsample factor 2"):
        encode_images(model, np.zeros(shape, np.float32))


def test_encode_rejects_wrong_layout(model):
    with pytest.raises(ValueError, match=r"\[B, H, W, 3\].*\(1, 3, 32, 32\)"):
        model.encode(jnp.zeros((1, 3, 32, 32)))


@pytest.mark.parametrize("bad", [-1, 64, 1000])
def test_decode_rejects_codes_outside_the_codebook(model, bad):
    codes = np.zeros((1, 4, 4), np.int32)
    codes[0, 1, 2] = bad
    with pytest.raises(ValueError, match=r"\[0, 64\)"):
        model.decode(jnp.asarray(codes))
    with pytest.raises(ValueError, match=r"\[0, 64\)"):
        decode_codes(model, codes)


def test_decode_rejects_non_integer_codes(model):
    with pytest.raises(ValueError, match="integers"):
        model.decode(jnp.zeros((1, 4, 4), jnp.float32))


@pytest.mark.parametrize("legacy", [True, False])
def test_quantizer_nearest_code_losses_and_straight_through(legacy):
    vq = VectorQuantizer(32, 8, beta=0.25, legacy=legacy, rngs=nnx.Rngs(1))
    vq.embedding[...] = jax.random.normal(jax.random.key(2), (32, 8))
    z = jax.random.normal(jax.random.key(3), (2, 3, 5, 8))
    z_q, codes, losses = vq(z)

    e = np.asarray(vq.embedding[...])
    dist = ((np.asarray(z)[..., None, :] - e) ** 2).sum(-1)
    np.testing.assert_array_equal(codes, dist.argmin(-1))
    np.testing.assert_allclose(z_q, e[np.asarray(codes)], atol=1e-6)
    mse = float(np.mean((e[np.asarray(codes)] - np.asarray(z)) ** 2))
    # Taming legacy: commitment + beta * codebook; otherwise beta * commitment + codebook.
    want_commit, want_book = (mse, 0.25 * mse) if legacy else (0.25 * mse, mse)
    np.testing.assert_allclose(losses["commitment_loss"], want_commit, rtol=1e-5)
    np.testing.assert_allclose(losses["codebook_loss"], want_book, rtol=1e-5)
    np.testing.assert_allclose(losses["quantizer_loss"], 1.25 * mse, rtol=1e-5)

    # Straight-through: d(sum(w * z_q))/dz = w.
    w = jax.random.normal(jax.random.key(4), z.shape)
    grad_z = jax.grad(lambda z: jnp.sum(vq(z)[0] * w))(z)
    np.testing.assert_allclose(grad_z, w, atol=1e-6)
    # The codebook term moves only the codes that were used.
    g = nnx.grad(lambda m: m(z)[2]["codebook_loss"])(vq).embedding[...]
    used = np.zeros(32, bool)
    used[np.unique(np.asarray(codes))] = True
    assert np.all(np.abs(np.asarray(g))[~used] == 0) and np.any(np.asarray(g)[used] != 0)


def test_l2_normalized_codes():
    vq = VectorQuantizer(16, 4, l2_normalize=True, rngs=nnx.Rngs(0))
    z_q, codes, _ = vq(jax.random.normal(jax.random.key(1), (1, 2, 2, 4)) * 7.0)
    np.testing.assert_allclose(jnp.linalg.norm(z_q, axis=-1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(jnp.linalg.norm(vq.lookup(codes), axis=-1), 1.0, rtol=1e-5)


def test_training_call_returns_losses_and_grads_reach_the_encoder(model):
    images = _images((2, 32, 32, 3), seed=5)
    recon, aux = model(images)
    assert recon.shape == images.shape
    assert aux["codes"].shape == (2, 16, 16) and aux["latents"].shape == (2, 16, 16, 16)
    for k in ("codebook_loss", "commitment_loss", "quantizer_loss"):
        assert aux[k].shape == () and bool(jnp.isfinite(aux[k]))

    def loss(m):
        r, a = m(images)
        return jnp.mean((r - images) ** 2) + a["quantizer_loss"]

    grads = nnx.jit(nnx.grad(loss))(model)
    assert float(jnp.abs(grads.encoder.conv_in.kernel[...]).sum()) > 0
    assert float(jnp.abs(grads.decoder.conv_out.kernel[...]).sum()) > 0


def test_sharded_encode_and_decode_match_single_device(cpu_devices, model):
    mesh = make_mesh(MeshConfig(data=4, fsdp=2, tensor=1))
    sharded = create_sharded(lambda: VQGAN(TINY, rngs=nnx.Rngs(0)), mesh)
    assert sharded.encoder.conv_in.kernel[...].sharding.is_fully_replicated  # data-parallel only
    images = _images((5, 32, 48, 3), seed=7)  # 5 rows over 8 devices: padded, then trimmed
    single = encode_images(model, images)
    codes = encode_images(sharded, images, mesh=mesh)
    assert codes.shape == (5, 16, 24)
    np.testing.assert_array_equal(codes, single)
    np.testing.assert_allclose(
        decode_codes(sharded, codes, mesh=mesh), decode_codes(model, single), atol=1e-5
    )


@pytest.mark.parametrize("tile", [1, 2])
def test_encode_tile_codes_see_only_their_tile(tile):
    """encode_tile: each tile of tile x tile codes is the encoding of its own pixels alone,
    so repainting the rest of the image leaves its codes unchanged (the default encoder
    mixes in context)."""
    config = VQGANConfig(**{**TINY.__dict__, "encode_tile": tile})
    tiled = nnx.jit(lambda: VQGAN(config, rngs=nnx.Rngs(0)))()
    images = _images((2, 32, 32, 3))
    f = config.downsample_factor
    p = tile * f
    codes = np.asarray(tiled.encode(images))
    # Each tile on its own, as a batch of p x p images through the same weights.
    for i in range(0, 32, p):
        for j in range(0, 32, p):
            latents = tiled.quant_conv(
                tiled.encoder(images[:, i : i + p, j : j + p], deterministic=True)
            )
            alone = np.asarray(tiled.quantize(latents)[1])
            np.testing.assert_array_equal(
                codes[:, i // f : i // f + tile, j // f : j // f + tile], alone
            )
    repainted = images.at[:, p:].set(_images((2, 32 - p, 32, 3), seed=5))
    np.testing.assert_array_equal(
        np.asarray(tiled.encode(repainted))[:, :tile, :tile], codes[:, :tile, :tile]
    )
    # The same weights without tiles: the untouched corner's latents change.
    context = nnx.merge(nnx.graphdef(VQGAN(TINY, rngs=nnx.Rngs(0))), nnx.state(tiled))
    corner = np.asarray(context.encode_latents(images))[:, :tile, :tile]
    assert not np.allclose(corner, np.asarray(context.encode_latents(repainted))[:, :tile, :tile])
    recon, _ = tiled(images)
    assert recon.shape == images.shape
    with pytest.raises(ValueError, match="encode_tile"):
        VQGANConfig(**{**TINY.__dict__, "encode_tile": -1})


def test_decode_tile_pixels_come_from_their_own_codes_alone():
    """decode_tile=1: each code decodes to its f x f pixels on its own, as a 1x1 grid
    through the same decoder; changing other codes leaves them alone. Mutation caught:
    ``from_tiles`` with the tile axes in the wrong order."""
    config = VQGANConfig(**{**TINY.__dict__, "decode_tile": 1})
    model = nnx.jit(lambda: VQGAN(config, rngs=nnx.Rngs(0)))()
    f = config.downsample_factor
    codes = jax.random.randint(jax.random.key(3), (2, 32 // f, 32 // f), 0, config.n_embed)
    pixels = np.asarray(model.decode(codes))
    for i in (0, 32 // f - 1):
        for j in (0, 1):
            alone = model.decode_latents(model.embed_codes(codes[:, i : i + 1, j : j + 1]))
            np.testing.assert_allclose(
                pixels[:, i * f : (i + 1) * f, j * f : (j + 1) * f], np.asarray(alone),
                rtol=1e-5, atol=1e-5,
            )  # fmt: skip
    other = codes.at[:, 1:].set((codes[:, 1:] + 1) % config.n_embed)
    np.testing.assert_array_equal(np.asarray(model.decode(other))[:, :f], pixels[:, :f])
    with pytest.raises(ValueError, match="decode_tile"):
        VQGANConfig(**{**TINY.__dict__, "decode_tile": -1})


def test_padded_3x3_conv_on_a_1x1_map_reads_only_its_centre_tap():
    from liquid_jax.models.vqgan_blocks import TamingConv, conv

    layer = conv(8, 16, 3, rngs=nnx.Rngs(0), dtype=jnp.float32)
    assert isinstance(layer, TamingConv)
    layer.bias[...] = jax.random.normal(jax.random.key(1), (16,))
    x = jax.random.normal(jax.random.key(2), (4, 1, 1, 8))
    np.testing.assert_allclose(layer(x), nnx.Conv.__call__(layer, x), rtol=1e-5, atol=1e-6)
    wide = jax.random.normal(jax.random.key(3), (4, 3, 3, 8))  # the general path
    np.testing.assert_array_equal(layer(wide), nnx.Conv.__call__(layer, wide))
