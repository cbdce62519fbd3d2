"""The transformer on its own: KV cache, padding, remat, sharding, spec checks."""

import re

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax.ad_checkpoint import print_saved_residuals
from jax.sharding import PartitionSpec as P

from liquid_jax.models.attention import segment_causal_mask
from liquid_jax.models.rope import inverse_frequencies, rope_tables
from liquid_jax.models.spec import REMAT_POLICIES, TransformerSpec
from liquid_jax.models.transformer import _REMAT_POLICIES, PAD_LOGIT, DecoderLayer, Transformer
from liquid_jax.parallel import MeshConfig, create_sharded, make_mesh
from tests import tiny

VOCAB = 300


def tiny_spec(family="gemma2", **kw):
    """``tests.tiny.tiny_spec`` with 3 layers (Gemma2's window alternates)."""
    return tiny.tiny_spec(family, **{"vocab_size": VOCAB, "num_layers": 3, **kw})


@pytest.fixture(scope="module")
def model():
    return Transformer(tiny_spec(), rngs=nnx.Rngs(0))


@nnx.jit
def forward(model, tokens):
    return model(tokens)


@nnx.jit
def cached(model, tokens, positions, segment_ids, cache, logit_indices=None):
    return model(tokens, positions, segment_ids, cache=cache, logit_indices=logit_indices)


def _tokens(shape, seed=0):
    return jnp.asarray(np.random.RandomState(seed).randint(0, VOCAB, shape), jnp.int32)


def test_padding_columns_are_masked(model):
    logits = forward(model, _tokens((2, 10)))
    assert logits.shape == (2, 10, 384) and logits.dtype == jnp.float32
    assert np.all(np.asarray(logits[..., VOCAB:]) == PAD_LOGIT)
    assert model.spec.window_sizes == (3, 0, 3)  # HF Gemma2: even layers slide


def test_prefill_then_decode_equals_full_forward(model):
    tokens = _tokens((2, 10))
    full = forward(model, tokens)
    cache = model.init_cache(2, 12)
    ones = jnp.ones((2, 6), jnp.int32)
    logits, cache = cached(model, tokens[:, :6], jnp.arange(6)[None].repeat(2, 0), ones, cache)
    steps = [logits]
    for i in range(6, 10):
        pos = jnp.full((2, 1), i, jnp.int32)
        logits, cache = cached(model, tokens[:, i : i + 1], pos, ones[:, :1], cache)
        steps.append(logits)
    assert int(cache.index) == 10
    np.testing.assert_allclose(
        jnp.concatenate(steps, 1)[..., :VOCAB], full[..., :VOCAB], atol=2e-5, rtol=1e-5
    )


def test_left_and_right_padded_prompts_match_unpadded(model):
    """Per-row positions and segment ids: padding (segment 0) is invisible on either side,
    including to the sliding window, which counts positions rather than slots."""
    tokens = _tokens((2, 10))
    full = forward(model, tokens)  # row 0's first five tokens are the reference prompt
    real, pad = tokens[0, :4], jnp.zeros((2,), jnp.int32)
    prompt = jnp.stack([jnp.concatenate([real, pad]), jnp.concatenate([pad, real])])
    segments = jnp.asarray([[1, 1, 1, 1, 0, 0], [0, 0, 1, 1, 1, 1]], jnp.int32)
    positions = jnp.asarray([[0, 1, 2, 3, 0, 0], [0, 0, 0, 1, 2, 3]], jnp.int32)
    last = jnp.asarray([[3], [5]], jnp.int32)  # each row's last real prompt token
    logits, cache = cached(model, prompt, positions, segments, model.init_cache(2, 12), last)
    assert logits.shape == (2, 1, 384)
    for row in range(2):
        np.testing.assert_allclose(logits[row, 0, :VOCAB], full[0, 3, :VOCAB], atol=2e-5, rtol=1e-5)
    nxt = jnp.full((2, 1), tokens[0, 4])
    logits, _ = cached(model, nxt, jnp.full((2, 1), 4), jnp.ones((2, 1), jnp.int32), cache)
    for row in range(2):
        np.testing.assert_allclose(logits[row, 0, :VOCAB], full[0, 4, :VOCAB], atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize("policy", sorted(set(REMAT_POLICIES) - {"none"}))
def test_remat_policies_give_the_same_loss_and_gradients(policy):
    spec = tiny_spec("llama", num_layers=2)
    tokens = _tokens((2, 8))

    def loss_and_grads(spec):
        model = Transformer(spec, rngs=nnx.Rngs(1))

        @nnx.jit
        def step(model):
            loss = lambda m: jnp.mean(jax.nn.logsumexp(m(tokens)[..., :VOCAB], -1))
            return nnx.value_and_grad(loss)(model)

        return step(model)

    chex.assert_trees_all_close(
        loss_and_grads(spec), loss_and_grads(spec.replace(remat=policy)), atol=1e-6, rtol=1e-5
    )


_QKV = {"query_proj", "key_proj", "value_proj"}


@pytest.mark.parametrize(
    "policy, names",
    [
        ("full", set()),
        ("save_qkv_proj", _QKV),
        ("save_out_proj", {"out_proj"}),
        ("save_dot_except_mlp", _QKV | {"out_proj"}),
        ("save_dot_except_mlpwi", _QKV | {"out_proj", "mlpwo"}),
        ("minimal", _QKV | {"out_proj", "mlpwo", "mlpwi_0", "mlpwi_1"}),
        # JAX's dot policies do not see into the projections' custom VJP: kept by name.
        ("dots_with_no_batch_dims_saveable", _QKV | {"out_proj", "mlpwo", "mlpwi_0", "mlpwi_1"}),
    ],
)
def test_named_remat_policies_keep_the_projections_they_name(policy, names, capsys):
    """What one decoder layer under the policy keeps for its backward (``jax.checkpoint``
    residuals): exactly the projection outputs the policy names, besides its inputs.
    Gemma2's layer, whose sandwich norms read both outputs that a pre-norm layer only
    adds to its residual stream (``out_proj``, ``mlpwo``: no backward needs those)."""
    spec = tiny_spec("gemma2", num_layers=1)
    graphdef, state = nnx.split(DecoderLayer(spec, nnx.Rngs(0)))
    b, t = 2, 8
    positions = jnp.broadcast_to(jnp.arange(t, dtype=jnp.int32), (b, t))
    cos, sin = rope_tables(
        positions, inverse_frequencies(spec.head_dim, spec.rope_theta), spec.dtype
    )
    ones = jnp.ones((b, t), jnp.int32)
    mask = segment_causal_mask(ones, ones, positions[0], positions[0])

    def layer(x, state):
        return nnx.merge(graphdef, state)(x, cos, sin, mask)[0].sum()

    x = jax.random.normal(jax.random.key(0), (b, t, spec.hidden_size))
    print_saved_residuals(jax.checkpoint(layer, policy=_REMAT_POLICIES[policy]), x, state)
    residuals = capsys.readouterr().out
    assert "from the argument" in residuals  # the layer's inputs, always kept
    assert set(re.findall(r"named '(\w+)'", residuals)) == names, residuals


@pytest.mark.parametrize(
    "chunk, remat", [(4, "none"), (8, "none"), (4, "full"), (8, "save_qkv_proj")]
)
def test_causal_attention_blocks_give_the_same_logits_and_gradients(chunk, remat):
    """Blocks of queries reading only the keys before their end: the same loss and
    gradients as one block, on packed rows (segments restart), Gemma2's sliding window
    and soft-cap, and grouped heads. Under a named remat policy the blocks run as tiles
    with their own backward (``attention_blocks``)."""
    tokens = _tokens((2, 16))
    segments = jnp.asarray([[1] * 5 + [2] * 9 + [0] * 2, [1] * 11 + [2] * 5], jnp.int32)
    positions = jnp.asarray([[*range(5), *range(9), 0, 0], [*range(11), *range(5)]], jnp.int32)

    def loss_and_grads(spec):
        model = Transformer(spec, rngs=nnx.Rngs(2))

        @nnx.jit
        def step(model):
            loss = lambda m: jnp.mean(
                jax.nn.logsumexp(m(tokens, positions, segments)[..., :VOCAB], -1)
            )
            return nnx.value_and_grad(loss)(model)

        return step(model)

    spec = tiny_spec(num_layers=2)
    ref, ref_grads = loss_and_grads(spec)
    got, got_grads = loss_and_grads(spec.replace(attn_causal_chunk=chunk, remat=remat))
    np.testing.assert_allclose(got, ref, rtol=1e-6)
    chex.assert_trees_all_close(got_grads, ref_grads, atol=1e-6, rtol=1e-5)


def test_full_remat_keeps_bf16_layer_inputs_as_16_bit_words():
    """Under ``remat="full"`` the scan keeps each layer's bf16 input for the backward as
    uint16 words: no float32 [L, B, T, D] stack in the compiled step (XLA:CPU widened a
    bf16 one), and the gradients of ``jax.checkpoint``'s recompute, to bf16 rounding."""
    spec = tiny_spec("llama", num_layers=3, dtype="bfloat16")
    tokens = _tokens((2, 16))

    def step(spec):
        model = Transformer(spec, rngs=nnx.Rngs(1))
        graphdef, state = nnx.split(model)

        def loss(state):
            logits = nnx.merge(graphdef, state)(tokens)[..., :VOCAB]
            return jnp.mean(jax.nn.logsumexp(logits, -1))

        return jax.jit(jax.value_and_grad(loss)), state

    stack = f"[3,2,16,{spec.hidden_size}]"
    full, state = step(spec.replace(remat="full"))
    hlo = full.lower(state).compile().as_text()
    assert f"u16{stack}" in hlo and f"f32{stack}" not in hlo
    reference, _ = step(spec.replace(remat="save_out_proj"))
    chex.assert_trees_all_close(full(state), reference(state), atol=2e-2, rtol=2e-2)


def test_causal_attention_blocks_leave_cached_and_uneven_calls_alone():
    """With a cache the keys are slots, not the queries' own tokens: one block, even when
    the cache is exactly as long as the prompt. A length the block does not divide also
    runs as one block."""
    from liquid_jax.models.attention import dot_product_attention

    tokens, ones = _tokens((2, 8)), jnp.ones((2, 8), jnp.int32)
    positions = jnp.arange(8)[None].repeat(2, 0)
    spec = tiny_spec(num_layers=2)
    one, blocks = (
        Transformer(s, rngs=nnx.Rngs(3)) for s in (spec, spec.replace(attn_causal_chunk=4))
    )
    want, _ = cached(one, tokens, positions, ones, one.init_cache(2, 8))
    got, _ = cached(blocks, tokens, positions, ones, blocks.init_cache(2, 8))
    np.testing.assert_array_equal(got, want)

    q, k, v = (jax.random.normal(jax.random.key(i), (1, 6, 2, 4)) for i in range(3))
    mask = jnp.tril(jnp.ones((6, 6), bool))[None]
    np.testing.assert_array_equal(dot_product_attention(q, k, v, mask, 0.5, None, 4),
                                  dot_product_attention(q, k, v, mask, 0.5))  # fmt: skip


def test_sharded_forward_matches_single_device(cpu_devices):
    spec = tiny_spec("qwen2", tie_embeddings=False)
    mesh = make_mesh(MeshConfig(data=2, fsdp=2, tensor=2))
    sharded = create_sharded(lambda: Transformer(spec, rngs=nnx.Rngs(0)), mesh)
    plain = Transformer(spec, rngs=nnx.Rngs(0))
    q = sharded.layers.self_attn.q_proj.kernel[...]
    assert q.sharding.spec == P(None, "fsdp", "tensor", None)
    assert sharded.lm_head.kernel[...].sharding.spec == P("fsdp", "tensor")
    tokens = _tokens((4, 8))
    with jax.set_mesh(mesh):
        logits = forward(sharded, tokens)
    assert logits.sharding.spec == P(("data", "fsdp"), None, "tensor")
    np.testing.assert_allclose(logits, forward(plain, tokens), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(family="mamba"), "unknown family"),
        (dict(num_kv_heads=3), "not a multiple"),
        (dict(remat="sometimes"), "unknown remat"),
        (dict(layer_types=("sliding_attention",) * 3), "need a sliding_window"),
        (dict(layer_types=("full_attention",)), "1 layer_types for 3 layers"),
    ],
)
def test_bad_specs_are_named(kw, match):
    family = kw.pop("family", "llama")
    with pytest.raises(ValueError, match=match):
        tiny_spec(family, **kw) if family != "mamba" else TransformerSpec.for_family(family)


def test_spec_is_hashable_and_pads_vocab():
    spec = tiny_spec("gemma", vocab_multiple=128)
    assert hash(spec) == hash(tiny_spec("gemma"))
    assert spec.padded_vocab_size == 384 and spec.replace(vocab_multiple=1).padded_vocab_size == 300
