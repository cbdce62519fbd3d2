"""Greedy classifier-free guidance against a from-scratch reference.

For each sample the reference runs the model, without any cache or padding, on the
conditional prompt and on the unconditional prompt (they differ in length), mixes the
last logits as ``u + s (c - u)`` over the image-code range, takes the argmax and appends
that token to both prompts. ``Decoder`` (CFG rows interleaved and left-padded in one
batch) and ``Sampler.t2i(temperature=0)`` must produce the same codes token for token.

Mutations tried:
- ``decode_loop._record`` feeding each unconditional row its previous token
  (``last = jnp.stack([token_b, ds.last[1::2]], 1).reshape(-1)``): all three fail;
- ``decode_loop._choose`` with the pair order swapped (``guide(pairs[:, 1], pairs[:, 0],
  ...)``): all three fail;
- ``filters.guide`` returning ``cond + scale * (cond - uncond)``: the s = 0 case fails;
- ``decode_loop._choose`` dropping ``params.cfg_min_p``: the min_p case fails.
"""

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from liquid_jax.sample.decode_loop import DecodeSpec, SamplingParams
from liquid_jax.sample.prompts import left_pad
from liquid_jax.sample.t2i import t2i_rows
from tests.tiny import NUM_CODES, TEXT_VOCAB

# Captions of different lengths, so the conditional rows are padded differently.
CAPTIONS = ["w1 w2 w3 w4 w5 w6", "w7"]
GRID = (2, 3)
LO, HI = TEXT_VOCAB, TEXT_VOCAB + NUM_CODES


def reference_cfg_greedy(model, cond, uncond, num_new, scale, min_p=0.0):
    """int32[num_new] image token ids: one full forward per token over both prompts,
    each starting at column 0 of a fixed buffer (causal, so the unused tail never
    affects the logits read at a prompt's last real token). ``min_p``: codes whose
    conditional probability is below ``min_p`` times the best one's are not taken."""
    forward = nnx.jit(lambda m, t: m(t))
    lengths = [len(cond), len(uncond)]
    buf = np.zeros((2, max(lengths) + num_new), np.int32)
    buf[0, : len(cond)], buf[1, : len(uncond)] = cond, uncond
    out = []
    for _ in range(num_new):
        logits = np.asarray(forward(model, jnp.asarray(buf)))
        c, u = (logits[r, lengths[r] - 1, LO:HI] for r in range(2))
        guided = u + scale * (c - u)
        guided[np.exp(c - c.max()) < min_p] = -np.inf
        token = LO + int(np.argmax(guided))
        out.append(token)
        for r in range(2):
            buf[r, lengths[r]] = token
            lengths[r] += 1
    return np.asarray(out, np.int32)


@pytest.fixture(scope="module")
def rows(assets):
    _, layout, tok, _, _ = assets
    pairs = [t2i_rows(tok, layout, c, cfg=True) for c in CAPTIONS]
    assert len({len(r) for p in pairs for r in p}) == 3  # three different lengths
    return pairs


@pytest.mark.parametrize("scale,min_p", [(3.0, 0.0), (0.0, 0.0), (8.0, 0.5)])
def test_decoder_cfg_equals_the_reference(assets, sampler, rows, scale, min_p):
    """Guided greedy decoding equals the reference at s = 3, at s = 0, where the
    unconditional rows alone decide (so they must be fed the drawn tokens too), and with
    guidance kept among the codes the conditional branch finds plausible."""
    model, layout, _, _, _ = assets
    n = GRID[0] * GRID[1]
    spec = DecodeSpec(n, (LO, HI), greedy=True, cfg=True, pad_id=layout.pad_id)
    batch = left_pad([r for pair in rows for r in pair], layout.pad_id)
    params = SamplingParams.of(0, 1, scale, min_p)
    out = sampler.decoder.generate(batch, np.arange(2), 0, spec, params)
    for i, (cond, uncond) in enumerate(rows):
        want = reference_cfg_greedy(model, cond, uncond, n, scale, min_p)
        np.testing.assert_array_equal(out.tokens[i], want)
        if min_p:  # the filter changes what plain guidance would draw here
            assert not np.array_equal(want, reference_cfg_greedy(model, cond, uncond, n, scale))


def test_sampler_t2i_greedy_cfg_equals_the_reference(assets, sampler, rows):
    """``Sampler.t2i(temperature=0, cfg_scale=3)``: the codes are the reference's."""
    model, layout, _, _, _ = assets
    n = GRID[0] * GRID[1]
    out = sampler.t2i(CAPTIONS, grid=GRID, temperature=0.0, cfg_scale=3.0, decode=False)
    want = [layout.codes_of(reference_cfg_greedy(model, *pair, n, 3.0)) for pair in rows]
    np.testing.assert_array_equal(out.codes.reshape(2, n), np.stack(want))
    # Guidance matters here: the conditional-only greedy codes are different.
    plain = sampler.t2i(CAPTIONS, grid=GRID, temperature=0.0, cfg_scale=None, decode=False)
    assert not np.array_equal(plain.codes, out.codes)
