"""Top-k / top-p against a straightforward NumPy transcription of Liquid's reference
filter, guidance, and the draw (range, temperature, greedy)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from liquid_jax.sample.filters import draw, guide, order_key, top_k_filter, top_p_filter


def np_top_k(logits, k):
    """Reference: remove logits below the k-th largest (ties kept)."""
    out = logits.copy()
    kth = np.sort(logits, axis=-1)[:, ::-1][:, k - 1 : k]
    out[logits < kth] = -np.inf
    return out


def np_top_p(logits, p):
    """Reference: sort descending, remove where the inclusive cumulative probability
    exceeds p, shifted right by one (the first token always stays); off for p >= 1."""
    out = logits.copy()
    if p >= 1.0:
        return out
    for row in range(len(logits)):
        order = np.argsort(-logits[row], kind="stable")
        s = logits[row, order]
        probs = np.exp(s - s.max())
        probs /= probs.sum()
        remove = np.cumsum(probs) > p
        remove[1:] = remove[:-1].copy()
        remove[0] = False
        out[row, order[remove]] = -np.inf
    return out


def _logits(seed=0, shape=(6, 300), scale=3.0):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32) * scale


@pytest.mark.parametrize("k", [1, 7, 64, 299])
def test_top_k_matches_numpy(k):
    logits = _logits(k)
    np.testing.assert_array_equal(
        np.asarray(top_k_filter(jnp.asarray(logits), k)), np_top_k(logits, k)
    )


@pytest.mark.parametrize("p", [0.05, 0.5, 0.9, 0.96, 1.0])
def test_top_p_matches_numpy(p):
    logits = _logits(int(p * 100))
    np.testing.assert_array_equal(
        np.asarray(top_p_filter(jnp.asarray(logits), p)), np_top_p(logits, p)
    )


@pytest.mark.parametrize("k,p", [(0, 0.9), (10, 1.0), (50, 0.7), (300, 0.96)])
def test_top_k_then_top_p_match_numpy(k, p):
    logits = _logits(k + 1)
    ref = np_top_p(np_top_k(logits, k), p) if k else np_top_p(logits, p)
    ours = top_p_filter(top_k_filter(jnp.asarray(logits), k), p)
    np.testing.assert_array_equal(np.asarray(ours), ref)


def test_top_k_keeps_ties_and_handles_negative_and_infinite_logits():
    logits = np.asarray([[-3.0, 2.0, 2.0, -np.inf, -0.0, 0.0, -1e30, 5.0]], np.float32)
    np.testing.assert_array_equal(
        np.asarray(top_k_filter(jnp.asarray(logits), 2)), np_top_k(logits, 2)
    )
    np.testing.assert_array_equal(
        np.asarray(top_k_filter(jnp.asarray(logits), 5)), np_top_k(logits, 5)
    )
    ordered = np.asarray(order_key(jnp.asarray(np.sort(logits[0]))))
    assert (np.diff(ordered.astype(np.int64)) >= 0).all()


def test_guidance_at_scale_one_is_the_conditional_distribution():
    cond, uncond = _logits(1), _logits(2)
    guided = np.asarray(guide(jnp.asarray(cond), jnp.asarray(uncond), 1.0))
    np.testing.assert_allclose(guided, cond, atol=1e-5)
    np.testing.assert_allclose(jax.nn.softmax(guided), jax.nn.softmax(cond), atol=1e-6)
    np.testing.assert_allclose(
        np.asarray(guide(jnp.asarray(cond), jnp.asarray(uncond), 7.0)),
        uncond + 7 * (cond - uncond),
        rtol=1e-5,
        atol=1e-4,
    )


@pytest.mark.parametrize("min_p", [0.0, 0.05, 0.5])
def test_guidance_min_p_drops_what_the_conditional_finds_implausible(min_p):
    """NumPy: guided logits, with -inf where p_cond < min_p * max p_cond."""
    cond, uncond = _logits(4), _logits(5)
    want = uncond + 3 * (cond - uncond)
    p_cond = np.exp(cond - cond.max(-1, keepdims=True))  # p / max p
    want[p_cond < min_p] = -np.inf
    got = np.asarray(guide(jnp.asarray(cond), jnp.asarray(uncond), 3.0, min_p))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)
    assert np.isinf(got).any() == (min_p > 0)  # the filter acts on these logits


def test_draw_follows_the_filtered_distribution():
    """Empirical frequencies of many draws match softmax(top_p(top_k(logits / t)))."""
    logits = _logits(3, shape=(1, 12), scale=1.0)
    t, k, p = 0.8, 6, 0.9
    ref = np_top_p(np_top_k(logits / t, k), p)[0]
    probs = np.exp(ref - ref.max())
    probs /= probs.sum()
    n = 20000
    keys = jax.random.split(jax.random.key(0), n)
    batch = jnp.broadcast_to(jnp.asarray(logits), (n, 12))
    got = np.asarray(
        jax.jit(lambda k_, x: draw(k_, x, temperature=t, top_k=k, top_p=p))(keys, batch)
    )
    freq = np.bincount(got, minlength=12) / n
    assert set(np.flatnonzero(freq)) <= set(np.flatnonzero(probs))
    np.testing.assert_allclose(freq, probs, atol=0.015)


def test_greedy_is_argmax():
    logits = _logits(4)
    got = draw(None, jnp.asarray(logits), temperature=1.0, greedy=True)
    np.testing.assert_array_equal(np.asarray(got), logits.argmax(-1))
