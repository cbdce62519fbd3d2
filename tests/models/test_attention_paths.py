"""The fused attention paths (``TransformerSpec.attention``) against the XLA reference.

On CPU: ``dot_product`` is ``jax.nn.dot_product_attention`` (the cudnn wrapper with
``implementation="xla"``) and ``splash`` runs the Pallas kernel in interpret mode; cuDNN
itself needs an NVIDIA GPU.
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from liquid_jax.models import attention_kernels
from liquid_jax.models.attention_kernels import choose_attention
from liquid_jax.models.transformer import Transformer
from liquid_jax.parallel import MeshConfig, make_mesh
from tests import tiny

VOCAB = 300
T = 128  # splash's smallest block


def _batch():
    """Two packed rows: segments restart (positions too), padding (segment 0, position
    0) longer than Gemma2's window of 3, as packing produces."""
    rng = np.random.RandomState(0)
    tokens = jnp.asarray(rng.randint(0, VOCAB, (2, T)), jnp.int32)
    lengths = [(40, 80, 8), (100, 28, 0)]  # segment 1, segment 2, padding
    segments = [[1] * a + [2] * b + [0] * c for a, b, c in lengths]
    positions = [[*range(a), *range(b), *[0] * c] for a, b, c in lengths]
    return tokens, jnp.asarray(positions, jnp.int32), jnp.asarray(segments, jnp.int32)


def _loss_and_grads(spec):
    tokens, positions, segments = _batch()
    model = Transformer(spec, rngs=nnx.Rngs(2))

    @nnx.jit
    def step(model):
        def loss(m):
            nll = jax.nn.logsumexp(m(tokens, positions, segments)[..., :VOCAB], -1)
            weight = (segments > 0).astype(jnp.float32)  # padding carries no loss
            return jnp.sum(nll * weight) / jnp.sum(weight)

        return nnx.value_and_grad(loss)(model)

    return step(model)


@pytest.mark.parametrize(
    "attention, extras",
    [
        # jax.nn.dot_product_attention has no logit soft-cap.
        ("dot_product", dict(attn_logit_softcap=None)),
        ("splash", {}),
    ],
)
def test_fused_path_equals_xla_forward_and_gradients(attention, extras):
    """Gemma2 (alternating sliding window of 3 and global layers, soft-cap for splash),
    4 query heads on 2 KV heads, packed rows with padding: the same loss and the same
    gradient for every parameter."""
    spec = tiny.tiny_spec("gemma2", vocab_size=VOCAB, num_layers=2, **extras)
    assert spec.window_sizes == (3, 0) and spec.num_heads == 2 * spec.num_kv_heads
    ref, ref_grads = _loss_and_grads(spec.replace(attention="xla"))
    got, got_grads = _loss_and_grads(spec.replace(attention=attention))
    np.testing.assert_allclose(got, ref, rtol=1e-6)
    chex.assert_trees_all_close(got_grads, ref_grads, atol=2e-6, rtol=1e-5)


@pytest.mark.parametrize("window", [0, 5])
def test_kernels_equal_the_reference_mask(window):
    """One call of each CPU kernel against ``dot_product_attention`` with the dense
    segment-causal-window mask (tokens in order, positions = slots within a segment)."""
    from liquid_jax.models.attention import dot_product_attention

    q = jax.random.normal(jax.random.key(0), (2, T, 4, 16))
    k, v = (jax.random.normal(jax.random.key(i), (2, T, 2, 16)) for i in (1, 2))
    segments = jnp.asarray([[1] * 50 + [2] * 78, [3] * 128], jnp.int32)
    slots = jnp.arange(T)
    mask = (segments[:, :, None] == segments[:, None, :]) & (slots[None, :] <= slots[:, None])
    if window:
        mask &= slots[:, None] - slots[None, :] < window
    for impl, softcap in (("dot_product", None), ("splash", 2.0)):
        seg_mask = attention_kernels.SegmentMask(segments, jnp.int32(0), (window,), impl)
        got = attention_kernels.fused_attention(q, k, v, seg_mask, 0.25, softcap)
        want = dot_product_attention(q, k, v, mask, 0.25, softcap)
        np.testing.assert_allclose(got, want, atol=2e-6, rtol=1e-5, err_msg=impl)


def test_splash_under_a_mesh_equals_one_device(cpu_devices):
    """Inside a mesh the kernel runs per shard (batch over data/fsdp, heads over tensor);
    one KV head does not split over tensor=2 and is repeated per query head. The layer's
    window is picked by ``lax.switch`` from a traced index, as in the scanned stack."""
    q = jax.random.normal(jax.random.key(0), (2, T, 4, 16))
    k, v = (jax.random.normal(jax.random.key(i), (2, T, 1, 16)) for i in (1, 2))
    segments = _batch()[2]
    call = jax.jit(lambda q, k, v, segments, window_id: attention_kernels.fused_attention(
        q, k, v, attention_kernels.SegmentMask(segments, window_id, (0, 5), "splash"),
        0.25, 2.0))  # fmt: skip
    want = call(q, k, v, segments, jnp.int32(1))
    mesh = make_mesh(MeshConfig(data=2, fsdp=1, tensor=2), devices=cpu_devices[:4])
    with jax.set_mesh(mesh):
        got = call(q, k, v, segments, jnp.int32(1))
    np.testing.assert_allclose(got, want, atol=1e-6, rtol=1e-6)


def test_auto_choice_per_backend(monkeypatch):
    spec = tiny.tiny_spec("gemma2", vocab_size=VOCAB)
    assert spec.attention == "auto"
    assert choose_attention(spec, cached=False, seq_len=T) == "xla"  # this CPU
    for choice in ("splash", "cudnn", "dot_product"):  # a KV cache: always XLA
        assert choose_attention(spec.replace(attention=choice, attn_logit_softcap=None),
                                cached=True, seq_len=T) == "xla"  # fmt: skip
    monkeypatch.setattr(attention_kernels, "_platform", lambda: "tpu")
    assert choose_attention(spec, cached=False, seq_len=T) == "splash"
    assert choose_attention(spec, cached=False, seq_len=100) == "xla"
    monkeypatch.setattr(attention_kernels, "_platform", lambda: "cuda")
    half = spec.replace(dtype=jnp.bfloat16)
    assert choose_attention(half, cached=False, seq_len=100) == "xla"  # soft-cap
    no_cap = half.replace(attn_logit_softcap=None)
    assert choose_attention(no_cap, cached=False, seq_len=100) == "cudnn"
    assert choose_attention(no_cap.replace(dtype=jnp.float32), cached=False, seq_len=8) == "xla"


def test_cached_calls_run_the_xla_path():
    """Prefill with a cache under a fused choice gives exactly the XLA logits."""
    spec = tiny.tiny_spec("gemma2", vocab_size=VOCAB, attn_logit_softcap=None)
    tokens, positions, segments = _batch()
    call = nnx.jit(lambda m, c: m(tokens, positions, segments, cache=c)[0])
    models = [
        Transformer(spec.replace(attention=a), rngs=nnx.Rngs(0)) for a in ("xla", "dot_product")
    ]
    logits = [call(model, model.init_cache(2, T)) for model in models]
    np.testing.assert_array_equal(logits[0], logits[1])


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(attention="flash"), "unknown attention"),
        (dict(attention="cudnn"), "cannot apply attn_logit_softcap"),
        (dict(attention="dot_product"), "cannot apply attn_logit_softcap"),
    ],
)
def test_bad_attention_choices_are_named(kw, match):
    with pytest.raises(ValueError, match=match):
        tiny.tiny_spec("gemma2", **kw)


def test_splash_needs_a_length_multiple_of_128():
    spec = tiny.tiny_spec("llama", attention="splash")
    with pytest.raises(ValueError, match="multiple of 128, got 100"):
        choose_attention(spec, cached=False, seq_len=100)
