"""The compiled decode loop: greedy equals full recompute and transformers' generate,
end tokens stop rows, chunked runs equal one run, sharded runs equal unsharded ones, the
loop reads the weights as they lie."""

import functools

import chex
import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from liquid_jax.models.spec import TransformerSpec
from liquid_jax.models.transformer import Transformer
from liquid_jax.sample import decode_loop
from liquid_jax.sample.decode_loop import Decoder, DecodeSpec, SamplingParams
from liquid_jax.sample.prompts import left_pad
from tests.tiny import HF_VOCAB, hf_greedy, tiny_spec

VOCAB = 200
GREEDY = SamplingParams.of()


@pytest.fixture(scope="module")
def model():
    # Gemma2 with a sliding window shorter than the sequences: positions, not slots,
    # must drive the window when rows are left-padded.
    spec = tiny_spec("gemma2", vocab_size=VOCAB, sliding_window=6, max_position_embeddings=64)
    return Transformer(spec, rngs=nnx.Rngs(0))


def _prompts(lengths, seed=0, vocab=VOCAB):
    rng = np.random.default_rng(seed)
    return [rng.integers(3, vocab, n).astype(np.int32) for n in lengths]


def full_recompute_greedy(model, prompt, num_new, lo=0, hi=VOCAB):
    """No cache: one full forward per token over a fixed buffer (causal, so the unused
    tail never affects the logits read at the last real token). Only ids in [lo, hi)
    may be chosen; also returns how often the unrestricted argmax fell outside."""
    forward = nnx.jit(lambda m, t: m(t))
    buf = np.zeros((1, len(prompt) + num_new), np.int32)
    buf[0, : len(prompt)] = prompt
    n, outside = len(prompt), 0
    for _ in range(num_new):
        logits = np.asarray(forward(model, jnp.asarray(buf)))[0, n - 1, :VOCAB]
        outside += not lo <= logits.argmax() < hi
        buf[0, n] = lo + logits[lo:hi].argmax()
        n += 1
    return buf[0, len(prompt) :], outside


def test_greedy_equals_full_recompute(model):
    prompts = _prompts([5, 11, 2])
    spec = DecodeSpec(12, (0, VOCAB), greedy=True)
    out = Decoder(model).generate(left_pad(prompts, 0), np.arange(3), 0, spec, GREEDY)
    assert out.tokens.shape == (3, 12) and out.steps == 12
    for row, prompt in enumerate(prompts):
        np.testing.assert_array_equal(out.tokens[row], full_recompute_greedy(model, prompt, 12)[0])


def test_only_the_token_range_is_ever_produced(model):
    """T2I's text mask: with ids restricted to [120, 200), greedy decoding equals the full
    forward's argmax over that range, although the unrestricted argmax often lies
    outside; sampled tokens always lie inside."""
    prompts = _prompts([6, 3])
    spec = DecodeSpec(12, (120, VOCAB), greedy=True)
    out = Decoder(model).generate(left_pad(prompts, 0), np.arange(2), 0, spec, GREEDY)
    outside = 0
    for row, prompt in enumerate(prompts):
        ref, n = full_recompute_greedy(model, prompt, 12, 120, VOCAB)
        np.testing.assert_array_equal(out.tokens[row], ref)
        outside += n
    assert outside > 0
    sampled = DecodeSpec(40, (120, VOCAB), greedy=False, top_k=30, nucleus=True, cfg=True)
    rows = [p for p in prompts for _ in range(2)]
    out = Decoder(model).generate(
        left_pad(rows, 0), np.arange(2), 0, sampled, SamplingParams.of(1.5, 0.99, 3.0)
    )
    assert out.tokens.min() >= 120 and out.tokens.max() < VOCAB


def test_chunked_loop_equals_one_call_and_reports_progress(model):
    prompts = _prompts([4, 7])
    spec = DecodeSpec(10, (0, VOCAB), greedy=False, top_k=20, nucleus=True)
    params = SamplingParams.of(0.9, 0.9)
    decoder = Decoder(model)
    one = decoder.generate(left_pad(prompts, 0), np.arange(2), 3, spec, params)
    seen = []
    chunked = decoder.generate(
        left_pad(prompts, 0),
        np.arange(2),
        3,
        spec,
        params,
        chunk=4,
        progress=lambda done, total: seen.append((done, total)),
    )
    np.testing.assert_array_equal(one.tokens, chunked.tokens)
    assert seen == [(5, 10), (9, 10), (10, 10)]


def test_end_token_stops_rows_and_the_loop(model):
    prompts = _prompts([5, 8])
    free = Decoder(model).generate(
        left_pad(prompts, 0), np.arange(2), 0, DecodeSpec(12, (0, VOCAB)), GREEDY
    )
    # Make row 0's 3rd token and row 1's 5th token (whatever they are) end tokens.
    eos = (int(free.tokens[0, 2]), int(free.tokens[1, 4]))
    spec = DecodeSpec(12, (0, VOCAB), eos_ids=eos, pad_id=0)
    out = Decoder(model).generate(left_pad(prompts, 0), np.arange(2), 0, spec, GREEDY)
    for row in range(2):
        stop = next(i for i, t in enumerate(free.tokens[row]) if t in eos)
        np.testing.assert_array_equal(out.tokens[row, : stop + 1], free.tokens[row, : stop + 1])
        assert (out.tokens[row, stop + 1 :] == 0).all()  # done rows emit pad
    assert out.steps < 12  # the loop ended once every row was done


def test_sharded_loop_equals_single_device(model, cpu_devices):
    from liquid_jax.parallel import MeshConfig, make_mesh

    mesh = make_mesh(MeshConfig(data=2, fsdp=2, tensor=2))
    prompts = _prompts([4, 9, 6, 3, 5])  # 5 samples: padded to a multiple of 4 rows
    rows = [p for pair in zip(prompts, prompts[::-1]) for p in pair]  # cond, uncond pairs
    spec = DecodeSpec(8, (100, VOCAB), greedy=False, top_k=30, nucleus=True, cfg=True)
    params = SamplingParams.of(0.99, 0.96, 3.0)
    plain = Decoder(model).generate(left_pad(rows, 0), np.arange(5), 1, spec, params)
    sharded = Decoder(model, mesh).generate(left_pad(rows, 0), np.arange(5), 1, spec, params)
    np.testing.assert_array_equal(plain.tokens, sharded.tokens)


# -- parity with transformers ----------------------------------------------------------


@pytest.mark.torch
@pytest.mark.parametrize("variant", ["gemma", "gemma2", "qwen2_untied"])
def test_greedy_equals_transformers_generate(variant, hf_checkpoint):
    pytest.importorskip("torch")
    from liquid_jax.export import load_hf

    hf, path = hf_checkpoint(variant)
    model = load_hf(path)
    prompts = _prompts([6, 13, 9], seed=1, vocab=HF_VOCAB)
    spec = DecodeSpec(10, (0, HF_VOCAB), greedy=True)
    out = Decoder(model).generate(left_pad(prompts, 0), np.arange(3), 0, spec, GREEDY)
    for row, prompt in enumerate(prompts):  # HF unpadded, one row at a time
        np.testing.assert_array_equal(out.tokens[row], hf_greedy(hf, prompt[None], 10)[0])


def test_set_weights_decodes_with_the_new_weights_and_keeps_the_compile(model):
    """Another checkpoint of the same architecture: equal to a fresh Decoder of it, with no
    new compile. Mutation caught: ``set_weights`` not storing the new state."""
    other = Transformer(model.spec, rngs=nnx.Rngs(7))
    prompts = left_pad(_prompts([5, 9]), 0)
    # Sampled, not greedy: a tied-embedding model at init tends to repeat its last token
    # whatever its weights.
    spec, params = DecodeSpec(6, (0, VOCAB)), SamplingParams.of(temperature=1.0)
    decoder = Decoder(model)
    first = decoder.generate(prompts, np.arange(2), 0, spec, params).tokens
    compiled = len(decoder._compiled)
    decoder.set_weights(other)
    swapped = decoder.generate(prompts, np.arange(2), 0, spec, params).tokens
    fresh = Decoder(other).generate(prompts, np.arange(2), 0, spec, params).tokens
    np.testing.assert_array_equal(swapped, fresh)
    assert first.shape == swapped.shape
    # This tiny model at init repeats its last token whatever its weights, so check the
    # weights themselves too.
    chex.assert_trees_all_equal(decoder.state, nnx.state(other))
    assert len(decoder._compiled) == compiled
    smaller = TransformerSpec.from_dict({**model.spec.to_dict(), "intermediate_size": 64})
    with pytest.raises(ValueError, match="same architecture"):
        decoder.set_weights(Transformer(smaller, rngs=nnx.Rngs(0)))


def _sub_jaxprs(eqn):
    for value in eqn.params.values():
        for item in value if isinstance(value, (tuple, list)) else (value,):
            if isinstance(item, jax.extend.core.ClosedJaxpr):
                yield item.jaxpr
            elif isinstance(item, jax.extend.core.Jaxpr):
                yield item


def _weight_uses(jaxpr, shapes, found):
    """Equations that touch a weight-shaped value other than by a matmul or a gather of
    embedding rows (a per-step cast, slice or reshape of the weights)."""
    for eqn in jaxpr.eqns:
        subs = list(_sub_jaxprs(eqn))
        for sub in subs:
            _weight_uses(sub, shapes, found)
        if subs or eqn.primitive.name in ("dot_general", "gather"):
            continue
        found += [
            eqn.primitive.name for v in eqn.invars if getattr(v.aval, "shape", None) in shapes
        ]
    return found


def test_the_loop_reads_weights_as_they_lie():
    """float32 parameters, bfloat16 compute: the weights are taken out of the layer stack
    and cast once, before the loop; inside it only matmuls (and the embedding gather)
    touch a weight. Mutation caught: ``decode_step`` without ``decode_weights``."""
    spec = tiny_spec("qwen2", vocab_size=VOCAB, tie_embeddings=False, dtype="bfloat16")
    graphdef, state = nnx.split(Transformer(spec, rngs=nnx.Rngs(0)))
    dspec = DecodeSpec(4, (100, VOCAB))
    batch = left_pad(_prompts([3, 5, 4]), 0)
    inputs = [jnp.asarray(a) for a in (batch.tokens, batch.positions, batch.segment_ids)]
    inputs += [jnp.asarray(batch.lengths), jnp.arange(3)]
    start = functools.partial(decode_loop._start, graphdef, dspec, batch.tokens.shape[1] + 3)
    ds = jax.eval_shape(start, state, *inputs, np.uint32(0), GREEDY)
    weights = jax.eval_shape(functools.partial(decode_loop._prepare, graphdef, dspec), state)
    advance = functools.partial(decode_loop._advance, graphdef, dspec)
    jaxpr = jax.make_jaxpr(advance)(state, weights, ds, GREEDY, np.int32(4)).jaxpr
    loop = next(e for e in jaxpr.eqns if e.primitive.name == "while")
    # Every weight matrix, stacked and one layer's (biases and norm scales are vectors).
    kernels = [
        x for path, x in jax.tree_util.tree_flatten_with_path(state)[0] if "kernel" in str(path)
    ]
    shapes = {x.shape for x in kernels} | {x.shape[1:] for x in kernels if x.ndim >= 3}
    assert _weight_uses(loop.params["body_jaxpr"].jaxpr, shapes, []) == []
