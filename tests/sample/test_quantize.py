"""Weight-only int8: the quantizer against NumPy, the int8 model against a float model
holding the dequantized weights (the same numbers by another route), its logit error
against the bf16 model, greedy agreement, the decode loop on int8 weights, memory."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from liquid_jax.errors import ConfigError
from liquid_jax.models.transformer import Transformer
from liquid_jax.sample.api import Sampler
from liquid_jax.sample.cli_sample import run_sample
from liquid_jax.sample.decode_loop import Decoder, DecodeSpec, SamplingParams
from liquid_jax.sample.prompts import left_pad
from liquid_jax.sample.quantize import quantize_int8, quantize_weights, weight_bytes
from tests.tiny import tiny_spec

VOCAB = 200
SPECS = {  # bf16 compute: the int8 model is compared with the model it serves
    "gemma_tied": tiny_spec("gemma", vocab_size=VOCAB, dtype="bfloat16"),
    "qwen2_untied": tiny_spec("qwen2", vocab_size=VOCAB, tie_embeddings=False, dtype="bfloat16"),
}


def _prompts(lengths, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(3, VOCAB, n).astype(np.int32) for n in lengths]


def test_quantize_int8_matches_numpy():
    w = np.random.default_rng(0).normal(size=(2, 8, 3, 5)).astype(np.float32)
    w[1, :, 2, 4] = 0.0  # an all-zero channel
    values, scale = quantize_int8(jnp.asarray(w), (1,))
    assert values.dtype == jnp.int8 and scale.shape == (2, 3, 5)
    want = np.abs(w).max(axis=1) / 127
    want = np.array(jnp.asarray(want).astype(jnp.bfloat16).astype(jnp.float32))
    want[1, 2, 4] = 1.0
    np.testing.assert_array_equal(scale, want)
    np.testing.assert_array_equal(values, np.clip(np.round(w / want[:, None]), -127, 127))
    error = np.abs(values * np.asarray(scale)[:, None] - w)
    assert (error <= want[:, None] * (0.5 + 1e-6)).all()  # rounding: half a step at most


def _dequantized(quantized: Transformer, spec) -> Transformer:
    """A float32 model holding ``values * scale`` of every quantized table."""
    model = Transformer(spec.replace(dtype="float32"), rngs=nnx.Rngs(0))
    state = nnx.to_flat_state(nnx.state(quantized))
    values = {path: v[...] for path, v in state}
    for path, v in nnx.to_flat_state(nnx.state(model)):
        x = values[path]
        scale = values.get((*path[:-1], path[-1] + "_scale"))
        if scale is not None:  # the scale's axes are the kernel's output (trailing) axes
            lead = 1 if path[0] == "layers" else 0
            shape = scale.shape[:lead] + (1,) * (x.ndim - scale.ndim) + scale.shape[lead:]
            if path[-1] == "embedding":
                shape = scale.shape + (1,)
            x = x.astype(jnp.float32) * scale.reshape(shape)
        v[...] = x
    return model


@pytest.mark.parametrize("name", list(SPECS))
def test_int8_model_equals_a_float_model_of_the_dequantized_weights(name):
    """Mutation caught: a scale applied over the wrong axis, or the lookup unscaled."""
    spec = SPECS[name].replace(dtype="float32")
    int8 = quantize_weights(Transformer(spec, rngs=nnx.Rngs(1)))
    reference = _dequantized(int8, spec)
    tokens = jnp.asarray(_prompts([9, 9])).reshape(2, 9)
    forward = nnx.jit(lambda m, t: m(t))
    np.testing.assert_allclose(forward(int8, tokens), forward(reference, tokens), atol=2e-4)


@pytest.mark.parametrize("name", list(SPECS))
def test_int8_logits_stay_close_to_bf16_and_greedy_tokens_agree(name):
    """Teacher-forced over the bf16 model's greedy continuations of 4 prompts: both
    models' logits at the same 64 positions, and how often their argmax agrees."""
    spec = SPECS[name]
    model = Transformer(spec, rngs=nnx.Rngs(2))
    int8 = quantize_weights(model)
    prompts = np.stack(_prompts([6] * 4, seed=3))
    greedy = DecodeSpec(16, (0, VOCAB))
    batch = left_pad(list(prompts), 0)
    cont = Decoder(model).generate(batch, np.arange(4), 0, greedy, SamplingParams.of()).tokens
    seqs = jnp.asarray(np.concatenate([prompts, cont], axis=1))
    forward = nnx.jit(lambda m, t: m(t)[:, 5:-1, :VOCAB])
    ref, got = np.asarray(forward(model, seqs)), np.asarray(forward(int8, seqs))
    error = np.abs(got - ref).max() / np.abs(ref).max()
    agree = float((got.argmax(-1) == ref.argmax(-1)).mean())
    assert (ref.argmax(-1) == cont).all()  # the continuation is the bf16 model's greedy
    print(f"{name}: int8 vs bf16 logits: max |error| {np.abs(got - ref).max():.4f}, "
          f"{error:.2%} of max |logit|; greedy tokens equal at {agree:.1%}")  # fmt: skip
    assert error < 0.1
    assert agree >= 0.9


def test_the_decode_loop_on_int8_weights_equals_its_full_recompute():
    """The one decoder holds for int8 weights: ``decode_step`` over the cache (weights
    taken apart outside the loop, the head's code columns sliced) gives the int8 model's
    own full-forward greedy tokens within a token range."""
    int8 = quantize_weights(Transformer(SPECS["gemma_tied"], rngs=nnx.Rngs(4)))
    prompts = _prompts([5, 3])
    out = Decoder(int8).generate(left_pad(prompts, 0), np.arange(2), 0,
                                 DecodeSpec(8, (120, VOCAB)), SamplingParams.of())  # fmt: skip
    # No cache: one full forward per token over a fixed buffer (causal, so the unused
    # tail never changes the logits read at the last real token): one compile.
    forward = nnx.jit(lambda m, t: m(t))
    for row, prompt in enumerate(prompts):
        buf = np.zeros((1, 13), np.int32)
        n = len(prompt)
        buf[0, :n] = prompt
        for _ in range(8):
            logits = np.asarray(forward(int8, jnp.asarray(buf)))[0, n - 1]
            buf[0, n] = 120 + int(logits[120:VOCAB].argmax())
            n += 1
        np.testing.assert_array_equal(out.tokens[row], buf[0, len(prompt) : n])


def test_quantized_weights_take_about_a_quarter_of_float32():
    spec = SPECS["qwen2_untied"].replace(dtype="float32")
    plain = nnx.eval_shape(lambda: Transformer(spec, rngs=nnx.Rngs(0)))
    int8 = nnx.eval_shape(lambda: quantize_weights(Transformer(spec, rngs=nnx.Rngs(0))))
    kernels = [x for p, x in nnx.to_flat_state(nnx.state(int8)) if p[-1] == "kernel"]
    assert {x.dtype for x in kernels} == {jnp.dtype(jnp.int8)}
    embedding = spec.padded_vocab_size * spec.hidden_size * 4  # untied: the lookup stays
    ratio = (weight_bytes(nnx.state(int8)) - embedding) / (
        weight_bytes(nnx.state(plain)) - embedding
    )
    assert 0.25 < ratio < 0.3, ratio  # int8 values plus float32 scales per channel


def test_quantize_refuses_unknown_modes_and_quantized_models():
    model = Transformer(SPECS["gemma_tied"], rngs=nnx.Rngs(0))
    with pytest.raises(ConfigError, match="int4"):
        quantize_weights(model, "int4")
    int8 = quantize_weights(model)
    assert model.layers.mlp.up_proj.kernel[...].dtype == jnp.float32  # left as it was
    with pytest.raises(ConfigError, match="already quantized"):
        quantize_weights(int8)


def test_sharded_int8_decode_equals_single_device(cpu_devices):
    from liquid_jax.parallel import MeshConfig, make_mesh

    mesh = make_mesh(MeshConfig(data=2, fsdp=2, tensor=2))
    int8 = quantize_weights(Transformer(SPECS["qwen2_untied"], rngs=nnx.Rngs(5)))
    batch = left_pad(_prompts([4, 9, 6, 3]), 0)
    spec = DecodeSpec(6, (100, VOCAB), greedy=False, top_k=30)
    params = SamplingParams.of(0.99)
    plain = Decoder(int8).generate(batch, np.arange(4), 1, spec, params)
    sharded = Decoder(int8, mesh).generate(batch, np.arange(4), 1, spec, params)
    np.testing.assert_array_equal(plain.tokens, sharded.tokens)
    assert jax.tree.leaves(nnx.state(int8))  # the model itself is untouched by placing


def test_sampler_and_sample_command_take_quantize(assets, tmp_path):
    model, layout, tok, vqgan, _ = assets
    sampler = Sampler(model, layout, tok, vqgan, batch_size=2, quantize="int8")
    dtypes = {x.dtype for x in jax.tree.leaves(sampler.decoder.state)}
    assert jnp.dtype(jnp.int8) in dtypes
    out = sampler.t2i("w1 w2", grid=(2, 2), num_samples=2, decode=False)
    assert out.codes.shape == (2, 2, 2) and out.codes.min() >= 0 and out.codes.max() < 64
    with pytest.raises(ConfigError, match="quantize=int4"):  # before any loading
        run_sample(task="t2i", out=str(tmp_path), workdir=str(tmp_path), prompt="w1",
                   quantize="int4")  # fmt: skip
