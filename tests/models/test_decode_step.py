"""The one decoder: ``DecodeModel.prefill`` / ``decode_step`` over the ``KVCache`` run the
training forward's layers from the weights taken apart once, so their logits equal the
full forward's at the same positions, for each family (Gemma2's window and soft-caps,
grouped heads, tied and untied heads), on packed and left-padded rows, for the whole head
or a column range of it (one that is a vocabulary block, one that cuts blocks)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from liquid_jax.models.decode_model import DecodeModel, greedy_generate
from liquid_jax.models.transformer import Transformer
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


@nnx.jit(static_argnums=(5,))
def prefill(model, tokens, positions, segments, last, columns):
    cache = model.init_cache(tokens.shape[0], tokens.shape[1] + NEW)
    return model.prefill(
        tokens, positions, segments, cache=cache, logit_indices=last, columns=columns
    )


@nnx.jit(static_argnums=(4,))
def step(model, tokens, positions, cache, columns):
    return model.decode_step(tokens, positions, cache, columns)


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
@pytest.mark.parametrize("columns", [None, (120, VOCAB), (100, 200)])
def test_decode_steps_equal_the_training_forward(family, columns):
    model = Transformer(SPECS[family], rngs=nnx.Rngs(1))
    seqs = _sequences()
    want = _reference(model, seqs)
    # Blocks [0, 120) and [120, VOCAB): (120, VOCAB) is one, (100, 200) cuts both.
    decode = DecodeModel.from_transformer(model, splits=(120,))
    # Left-padded prompts: row 1 is 3 slots shorter than row 0.
    width = max(LENGTHS)
    tokens = np.zeros((2, width), np.int32)
    segments, positions = np.zeros_like(tokens), np.zeros_like(tokens)
    for row, (seq, n) in enumerate(zip(seqs, LENGTHS)):
        tokens[row, width - n :] = seq[:n]
        segments[row, width - n :] = 1
        positions[row, width - n :] = np.arange(n)
    last = jnp.full((2, 1), width - 1, jnp.int32)
    arrays = map(jnp.asarray, (tokens, positions, segments))
    logits, cache = prefill(decode, *arrays, last, columns)
    lo, hi = columns or (0, VOCAB)
    for row, n in enumerate(LENGTHS):
        np.testing.assert_allclose(logits[row, 0], want[row][n - 1, lo:hi], atol=2e-5, rtol=1e-5)
    for i in range(NEW):
        feed = jnp.asarray([seq[n + i] for seq, n in zip(seqs, LENGTHS)], jnp.int32)
        pos = jnp.asarray([n + i for n in LENGTHS], jnp.int32)
        got, cache = step(decode, feed, pos, cache, columns)
        assert got.shape == (2, hi - lo) and got.dtype == jnp.float32
        for row, n in enumerate(LENGTHS):
            ref = want[row][n + i, lo:hi]
            np.testing.assert_allclose(got[row], ref, atol=2e-5, rtol=1e-5)
    assert int(cache.index) == width + NEW


def test_the_decode_model_holds_each_weight_once_cast_and_split():
    """bf16 compute over float32 parameters: every layer's parameters, the embedding's and
    the untied head's vocabulary blocks are bf16 already (no step casts them), the blocks
    hold the model's rows / columns (padding dropped), and nothing is held twice."""
    spec = SPECS["qwen2"].replace(dtype="bfloat16")
    model = Transformer(spec, rngs=nnx.Rngs(0))
    decode = DecodeModel.from_transformer(model, splits=(100, 200))
    assert len(decode.layers) == spec.num_layers and decode.edges == (0, 100, 200, VOCAB)
    state = nnx.state(decode)
    assert {x.dtype for x in jax.tree.leaves(state)} == {jnp.dtype(jnp.bfloat16)}
    kernel = model.lm_head.kernel[...]
    for (lo, hi), block in zip([(0, 100), (100, 200), (200, VOCAB)], decode.head):
        want = kernel[:, lo:hi].astype(jnp.bfloat16)
        np.testing.assert_array_equal(block.kernel[...], want)
    table = model.embed_tokens.embedding[...][:VOCAB].astype(jnp.bfloat16)
    np.testing.assert_array_equal(decode.embed[0].embedding[...], table)
    q = model.layers.self_attn.q_proj.kernel[...]
    np.testing.assert_array_equal(
        decode.layers[2].self_attn.q_proj.kernel[...], q[2].astype(jnp.bfloat16)
    )
    # One copy: the model's bf16 bytes less the padding rows (embedding and head).
    padding = 2 * 2 * (spec.padded_vocab_size - VOCAB) * spec.hidden_size
    held = sum(x.size for x in jax.tree.leaves(state)) * 2
    assert held == sum(x.size for x in jax.tree.leaves(nnx.state(model))) * 2 - padding


def test_greedy_generate_equals_argmax_of_the_forward():
    model = Transformer(SPECS["gemma2"], rngs=nnx.Rngs(2))
    prompt = np.random.default_rng(3).integers(3, VOCAB, (2, 5)).astype(np.int32)
    out = np.asarray(greedy_generate(model, jnp.asarray(prompt), 6))
    buf = prompt
    for _ in range(6):
        logits = np.asarray(nnx.jit(lambda m, t: m(t))(model, jnp.asarray(buf)))
        buf = np.concatenate([buf, logits[:, -1].argmax(-1)[:, None].astype(np.int32)], 1)
    np.testing.assert_array_equal(out, buf[:, 5:])
