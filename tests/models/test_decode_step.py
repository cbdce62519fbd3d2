"""The one decoder: ``Transformer.decode_step`` over the ``KVCache`` runs the training
forward's layers, so its logits equal the full forward's at the same positions, for each
family (Gemma2's window and soft-caps, grouped heads, tied and untied heads), on packed
and left-padded rows, for the whole head or a column range of it."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from liquid_jax.models.transformer import Transformer, greedy_generate
from tests import tiny

VOCAB = 300
LENGTHS = (7, 4)  # two prompts, then decoded tokens
NEW = 5


def _spec(family, **kw):
    return tiny.tiny_spec(family, **{"vocab_size": VOCAB, "num_layers": 3, **kw})


SPECS = {
    "gemma": _spec("gemma"),
    "gemma2": _spec("gemma2"),  # window 3 on layers 0 and 2, both soft-caps
    "qwen2": _spec("qwen2", tie_embeddings=False),
    "llama": _spec("llama"),
}


@nnx.jit
def packed_forward(model, tokens, positions, segments):
    return model(tokens, positions, segments)


@nnx.jit
def prefill(model, tokens, positions, segments, last):
    cache = model.init_cache(tokens.shape[0], tokens.shape[1] + NEW)
    return model(tokens, positions, segments, cache=cache, logit_indices=last)


@nnx.jit(static_argnums=(4,))
def step(model, tokens, positions, cache, columns):
    return model.decode_step(tokens, positions, cache, model.decode_weights(columns))


def _sequences(seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(3, VOCAB, n + NEW).astype(np.int32) for n in LENGTHS]


def _reference(model, seqs):
    """The training forward over both sequences packed into one row (segments 1, 2,
    positions restarting): float32[total, padded_vocab] per sequence."""
    tokens = np.concatenate(seqs)[None]
    segments = np.concatenate([np.full(len(s), i + 1) for i, s in enumerate(seqs)])[None]
    positions = np.concatenate([np.arange(len(s)) for s in seqs])[None]
    logits = np.asarray(packed_forward(model, *map(jnp.asarray, (tokens, positions, segments))))
    bounds = np.cumsum([0, *map(len, seqs)])
    return [logits[0, a:b] for a, b in zip(bounds[:-1], bounds[1:])]


@pytest.mark.parametrize("family", list(SPECS))
@pytest.mark.parametrize("columns", [None, (120, VOCAB)])
def test_decode_steps_equal_the_training_forward(family, columns):
    model = Transformer(SPECS[family], rngs=nnx.Rngs(1))
    seqs = _sequences()
    want = _reference(model, seqs)
    # Left-padded prompts: row 1 is 3 slots shorter than row 0.
    width = max(LENGTHS)
    tokens = np.zeros((2, width), np.int32)
    segments, positions = np.zeros_like(tokens), np.zeros_like(tokens)
    for row, (seq, n) in enumerate(zip(seqs, LENGTHS)):
        tokens[row, width - n :] = seq[:n]
        segments[row, width - n :] = 1
        positions[row, width - n :] = np.arange(n)
    last = jnp.full((2, 1), width - 1, jnp.int32)
    logits, cache = prefill(model, *map(jnp.asarray, (tokens, positions, segments)), last)
    lo, hi = columns or (0, model.spec.padded_vocab_size)
    for row, n in enumerate(LENGTHS):
        np.testing.assert_allclose(logits[row, 0], want[row][n - 1], atol=2e-5, rtol=1e-5)
    for i in range(NEW):
        feed = jnp.asarray([seq[n + i] for seq, n in zip(seqs, LENGTHS)], jnp.int32)
        pos = jnp.asarray([n + i for n in LENGTHS], jnp.int32)
        got, cache = step(model, feed, pos, cache, columns)
        assert got.shape == (2, hi - lo) and got.dtype == jnp.float32
        for row, n in enumerate(LENGTHS):
            ref = want[row][n + i, lo:hi]
            np.testing.assert_allclose(got[row], ref, atol=2e-5, rtol=1e-5)
    assert int(cache.index) == width + NEW


def test_decode_weights_are_cast_once_and_the_head_sliced():
    """bf16 compute over float32 parameters: ``decode_weights`` holds every layer's
    parameters already in bf16 (no step casts them), and the head's columns only."""
    spec = SPECS["qwen2"].replace(dtype="bfloat16")
    model = Transformer(spec, rngs=nnx.Rngs(0))
    weights = model.decode_weights((100, 200))
    assert len(weights.layers) == spec.num_layers
    dtypes = {x.dtype for x in jax.tree.leaves(weights.layers)}
    assert dtypes == {jnp.dtype(jnp.bfloat16)}
    assert weights.head.shape == (spec.hidden_size, 100) and weights.lo == 100
    np.testing.assert_array_equal(
        weights.head, model.lm_head.kernel[...][:, 100:200].astype(jnp.bfloat16)
    )


def test_greedy_generate_equals_argmax_of_the_forward():
    model = Transformer(SPECS["gemma2"], rngs=nnx.Rngs(2))
    prompt = np.random.default_rng(3).integers(3, VOCAB, (2, 5)).astype(np.int32)
    out = np.asarray(greedy_generate(model, jnp.asarray(prompt), 6))
    buf = prompt
    for _ in range(6):
        logits = np.asarray(nnx.jit(lambda m, t: m(t))(model, jnp.asarray(buf)))
        buf = np.concatenate([buf, logits[:, -1].argmax(-1)[:, None].astype(np.int32)], 1)
    np.testing.assert_array_equal(out, buf[:, 5:])
