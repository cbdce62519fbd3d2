"""chex checks at the model boundary: ``Transformer.__call__`` takes ``int[B, T]`` tokens
(positions, segment ids and logit indices shaped to match) and returns ``float32[B, T,
V]``; ``VQGAN.encode``/``decode`` map ``float[B, H, W, 3]`` <-> ``int32[B, H/f, W/f]``.

The checks run at trace time, so every test here runs abstractly (``nnx.eval_shape``) or
fails before any computation: nothing is compiled.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from liquid_jax.models import VQGAN, Transformer, encode_images
from tests.tiny import tiny_spec, tiny_vqgan_config

SPEC = tiny_spec("llama")  # vocabulary 300, padded to 384
VQ = tiny_vqgan_config()  # downsample 2
TOKENS = jnp.zeros((2, 8), jnp.int32)


@pytest.fixture(scope="module")
def model():
    """Abstract: a wrong input must fail before the parameters are touched."""
    return nnx.eval_shape(lambda: Transformer(SPEC, rngs=nnx.Rngs(0)))


@pytest.fixture(scope="module")
def vqgan():
    return nnx.eval_shape(lambda: VQGAN(VQ, rngs=nnx.Rngs(0)))


def _abstract(fn, *args):
    """``fn(model, *args)`` on a fresh model, shapes only."""
    return nnx.eval_shape(lambda: fn(Transformer(SPEC, rngs=nnx.Rngs(0)), *args))


def test_logits_are_float32_batch_length_vocab():
    logits = _abstract(lambda m, t: m(t), TOKENS)
    assert logits.shape == (2, 8, 384) and logits.dtype == jnp.float32
    last = _abstract(lambda m, t: m(t, logit_indices=jnp.full((2, 1), 7)), TOKENS)
    assert last.shape == (2, 1, 384)
    logits, cache = _abstract(lambda m, t: m(t[:, :1], cache=m.init_cache(2, 8)), TOKENS)
    assert logits.shape == (2, 1, 384) and cache.segment_ids.shape == (2, 8)


@pytest.mark.parametrize(
    "tokens, match",
    [
        (jnp.zeros((8,), jnp.int32), r"rank 1 .*Transformer: tokens must be int\[B, T\]"),
        (jnp.zeros((2, 8, 1), jnp.int32), r"rank 3 .*Transformer: tokens"),
        (jnp.zeros((2, 8), jnp.float32), r"float32.*Transformer: tokens must be int\[B, T\]"),
    ],
)
def test_tokens_of_the_wrong_rank_or_dtype_are_named(model, tokens, match):
    with pytest.raises(AssertionError, match=match):
        model(tokens)


@pytest.mark.parametrize("name", ["positions", "segment_ids"])
def test_positions_and_segment_ids_must_match_the_tokens(model, name):
    with pytest.raises(AssertionError, match=rf"\(2, 7\).*Transformer: {name} must be"):
        model(TOKENS, **{name: jnp.zeros((2, 7), jnp.int32)})
    with pytest.raises(AssertionError, match=rf"float32.*Transformer: {name} must be"):
        model(TOKENS, **{name: jnp.zeros((2, 8), jnp.float32)})


def test_logit_indices_and_cache_must_match_the_batch(model):
    with pytest.raises(AssertionError, match=r"rank 1 .*Transformer: logit_indices"):
        model(TOKENS, logit_indices=jnp.zeros((2,), jnp.int32))
    with pytest.raises(AssertionError, match=r"Transformer: logit_indices must be int\[B, K\]"):
        model(TOKENS, logit_indices=jnp.zeros((3, 1), jnp.int32))
    cache = jax.eval_shape(lambda: Transformer.init_cache(model, 3, 8))
    with pytest.raises(AssertionError, match="Transformer: the cache must have one row"):
        model(TOKENS, cache=cache)


def test_vqgan_maps_float_images_to_int32_codes_and_back():
    images = jnp.zeros((2, 8, 12, 3), jnp.float32)
    codes = nnx.eval_shape(lambda: VQGAN(VQ, rngs=nnx.Rngs(0)).encode(images))
    assert codes.shape == (2, 4, 6) and codes.dtype == jnp.int32
    codes = jnp.zeros((2, 4, 6), jnp.int32)
    out = nnx.eval_shape(lambda: VQGAN(VQ, rngs=nnx.Rngs(0)).decode(codes))
    assert out.shape == (2, 8, 12, 3) and out.dtype == jnp.float32


@pytest.mark.parametrize("dtype", [jnp.uint8, jnp.int32])
def test_vqgan_encode_wants_float_images(vqgan, dtype):
    images = jnp.zeros((1, 8, 8, 3), dtype)
    with pytest.raises(AssertionError, match="VQGAN.encode: images must be float"):
        vqgan.encode(images)
    with pytest.raises(AssertionError, match=r"encode_images: images must be float\[B, H, W, 3\]"):
        encode_images(vqgan, np.zeros((1, 8, 8, 3), np.uint8))


def test_vqgan_names_images_and_codes_of_the_wrong_rank(vqgan):
    with pytest.raises(ValueError, match=r"images must be \[B, H, W, 3\].*\(8, 8, 3\)"):
        vqgan.encode(jnp.zeros((8, 8, 3), jnp.float32))
    with pytest.raises(ValueError, match=r"codes must be int\[B, h, w\], got shape \(4, 4\)"):
        vqgan.decode(jnp.zeros((4, 4), jnp.int32))
    with pytest.raises(ValueError, match="codes must be integers"):
        vqgan.decode(jnp.zeros((1, 4, 4), jnp.float32))
