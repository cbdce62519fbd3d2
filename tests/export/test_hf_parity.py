"""Numerical parity with transformers for every family: logits, packed rows, save/reload,
greedy decoding over the KV cache. Tiny random models, float32."""

import numpy as np
import pytest

pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import jax.numpy as jnp  # noqa: E402
from flax import nnx  # noqa: E402

from liquid_jax.export import load_hf, save_hf  # noqa: E402
from liquid_jax.models import PAD_LOGIT, greedy_generate  # noqa: E402
from tests.tiny import HF_VARIANTS, hf_greedy, hf_logits  # noqa: E402
from tests.tiny import HF_VOCAB as VOCAB  # noqa: E402

pytestmark = pytest.mark.torch
ATOL = 1e-4


@nnx.jit
def forward(model, tokens, positions, segment_ids):
    return model(tokens, positions, segment_ids)


@pytest.fixture(scope="module", params=list(HF_VARIANTS))
def pair(request, hf_checkpoint):
    """(variant, HF model, our model loaded from its save_pretrained directory)."""
    hf, path = hf_checkpoint(request.param)
    return request.param, hf, load_hf(path)


def _random_tokens(seed=0):
    return np.random.RandomState(seed).randint(0, VOCAB, (2, 16))


def _packed():
    """Row 0: segments of 7 and 9 tokens; row 1: 10 and 4 tokens, then 2 padding."""
    lengths = [[7, 9], [10, 4]]
    tokens = _random_tokens(1)
    segments = np.zeros((2, 16), np.int32)
    positions = np.zeros((2, 16), np.int32)
    for row, lens in enumerate(lengths):
        start = 0
        for seg, n in enumerate(lens, start=1):
            segments[row, start : start + n] = seg
            positions[row, start : start + n] = np.arange(n)
            start += n
    return tokens, positions, segments, lengths


def _ours(model, tokens, positions=None, segments=None):
    positions = np.broadcast_to(np.arange(16), (2, 16)) if positions is None else positions
    segments = np.ones((2, 16), np.int32) if segments is None else segments
    return np.asarray(
        forward(model, jnp.asarray(tokens), jnp.asarray(positions), jnp.asarray(segments))
    )


def test_logits_match_transformers(pair):
    variant, hf, model = pair
    tokens = _random_tokens()
    ours = _ours(model, tokens)
    assert ours.shape == (2, 16, 384)
    np.testing.assert_allclose(ours[..., :VOCAB], hf_logits(hf, tokens), atol=ATOL, rtol=0)
    assert np.all(ours[..., VOCAB:] == PAD_LOGIT)
    if variant == "gemma2":
        assert model.spec.window_sizes == (5, 0, 5) and model.spec.final_logit_softcap == 4.0


def test_packed_segments_match_separate_runs(pair):
    _, hf, model = pair
    tokens, positions, segments, lengths = _packed()
    ours = _ours(model, tokens, positions, segments)
    for row, lens in enumerate(lengths):
        start = 0
        for n in lens:
            ref = hf_logits(hf, tokens[row : row + 1, start : start + n])[0]
            np.testing.assert_allclose(ours[row, start : start + n, :VOCAB], ref, atol=ATOL, rtol=0)
            start += n


def test_save_hf_reloads_in_transformers(pair, tmp_path):
    _, hf, model = pair
    save_hf(model, str(tmp_path))
    reloaded = transformers.AutoModelForCausalLM.from_pretrained(
        tmp_path, attn_implementation="eager"
    )
    assert type(reloaded) is type(hf)
    tokens = _random_tokens()
    np.testing.assert_allclose(
        hf_logits(reloaded, tokens), hf_logits(hf, tokens), atol=1e-6, rtol=0
    )


def test_greedy_generation_matches_transformers(pair):
    _, hf, model = pair
    prompt = _random_tokens(2)[:, :6]
    ours = np.asarray(greedy_generate(model, jnp.asarray(prompt), 20))
    np.testing.assert_array_equal(ours, hf_greedy(hf, prompt, 20))
