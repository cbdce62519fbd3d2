"""Decoding in phases (caches sized to each phase, grown between them) gives the same
tokens as one cache for the whole generation and as a full recompute, across chunked
calls, early stops and CFG."""

import numpy as np
import pytest
from flax import nnx

from liquid_jax.models.transformer import Transformer
from liquid_jax.sample.decode_loop import Decoder, DecodeSpec, SamplingParams
from liquid_jax.sample.phases import Phase, plan_phases
from liquid_jax.sample.prompts import left_pad
from tests.tiny import tiny_spec

VOCAB = 200


@pytest.fixture(scope="module")
def model():
    # A sliding window shorter than the generation: the grown cache's empty slots hold
    # position 0, which only the segment mask keeps out of the window.
    spec = tiny_spec("gemma2", vocab_size=VOCAB, sliding_window=6, max_position_embeddings=64)
    return Transformer(spec, rngs=nnx.Rngs(0))


def _prompts(lengths, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(3, VOCAB, n).astype(np.int32) for n in lengths]


def test_plan_covers_every_step_with_caches_just_long_enough():
    plan = plan_phases(24, 1024)  # T2I at 32x32: automatic, 4 phases
    assert [p.cache_len for p in plan] == [24 + 255, 24 + 511, 24 + 767, 24 + 1023]
    assert plan[0].first == 1 and plan[-1].end == 1024
    assert all(a.end == b.first for a, b in zip(plan, plan[1:]))
    # Step s attends slots [0, prompt + s): the phase's last step fits exactly.
    assert all(p.cache_len == 24 + p.end - 1 for p in plan)
    assert plan_phases(7, 12) == (Phase(1, 12, 18),)  # short generations: one phase
    assert len(plan_phases(7, 4, phases=9)) == 3  # never more phases than steps
    assert plan_phases(5, 1) == (Phase(1, 1, 5),)  # the prefill's draw only
    with pytest.raises(ValueError, match="phases"):
        DecodeSpec(4, (0, VOCAB), phases=-1)


def test_phased_greedy_equals_one_phase(model):
    """One phase is the loop that ``test_decode_loop`` checks against a full recompute
    and transformers' generate."""
    batch = left_pad(_prompts([5, 11, 2]), 0)
    out = [
        Decoder(model).generate(
            batch, np.arange(3), 0, DecodeSpec(12, (0, VOCAB), phases=n), SamplingParams.of()
        )
        for n in (1, 3)
    ]
    assert out[1].steps == 12
    np.testing.assert_array_equal(out[1].tokens, out[0].tokens)


def test_phased_sampling_with_cfg_and_chunks_equals_one_phase(model):
    """Chunks of 4 steps cross the phase boundaries (phases of steps 1-5, 6-10, 11-15):
    progress is reported per chunk as with one phase, and the draws are the same."""
    prompts = _prompts([4, 9, 6, 3])
    rows = [p for pair in zip(prompts, prompts[::-1]) for p in pair]  # cond, uncond pairs
    params = SamplingParams.of(0.99, 0.96, 3.0)
    outs, seen = [], []
    for phases in (1, 3):
        spec = DecodeSpec(16, (100, VOCAB), greedy=False, top_k=30, nucleus=True, cfg=True,
                          phases=phases)  # fmt: skip
        reports = []
        out = Decoder(model).generate(
            left_pad(rows, 0), np.arange(4), 1, spec, params, chunk=4,
            progress=lambda done, total, r=reports: r.append((done, total)),
        )  # fmt: skip
        outs.append(out.tokens)
        seen.append(reports)
    np.testing.assert_array_equal(outs[1], outs[0])
    assert seen[0] == seen[1] == [(5, 16), (9, 16), (13, 16), (16, 16)]


def test_end_tokens_stop_a_phased_loop_early(model):
    prompts = _prompts([5, 8])
    batch = left_pad(prompts, 0)
    free = Decoder(model).generate(
        batch, np.arange(2), 0, DecodeSpec(15, (0, VOCAB), phases=1), SamplingParams.of()
    )
    eos = (int(free.tokens[0, 2]), int(free.tokens[1, 6]))  # in phases 1 and 2 of 3
    spec = DecodeSpec(15, (0, VOCAB), eos_ids=eos, pad_id=0, phases=3)
    out = Decoder(model).generate(batch, np.arange(2), 0, spec, SamplingParams.of())
    for row in range(2):
        stop = next(i for i, t in enumerate(free.tokens[row]) if t in eos)
        np.testing.assert_array_equal(out.tokens[row, : stop + 1], free.tokens[row, : stop + 1])
        assert (out.tokens[row, stop + 1 :] == 0).all()
    assert out.steps < 15
