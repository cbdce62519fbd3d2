"""Liquid's sampling rule: temperature, top-k, top-p (nucleus), then one draw per row.

The semantics are those of the reference evaluation code (HF's old
``top_k_top_p_filtering``), applied in this order:

1. ``logits / max(temperature, 1e-5)``;
2. top-k keeps every logit >= the k-th largest one (ties with it are kept);
3. top-p keeps a token while the probability mass of the tokens ranked *before* it (after
   top-k) is <= p: the first token always stays, and so does the one that crosses p;
   ``p >= 1`` keeps everything;
4. softmax and a categorical draw (Gumbel-max), or argmax for greedy decoding.

Removed tokens get ``-inf``. Neither filter sorts: both cut at a threshold found by
bisection over the 32-bit patterns of the values (ordered as unsigned integers), 32
rounds of a compare-and-reduce over the row. That is exact (the k-th largest value
itself, or the smallest kept probability) and far cheaper than sorting 8192 codes at
every step, on CPU as on accelerators. Top-p differs from the reference only when a
token's preceding mass is within float rounding of p, or for tokens of exactly equal
probability at the cut (all kept here; the reference keeps them by sort position).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

MIN_TEMPERATURE = 1e-5  # the reference divides by max(temperature, 1e-5)
_BITS = 32


def apply_temperature(logits: jax.Array, temperature) -> jax.Array:
    """logits: float[..., V] -> logits / max(temperature, 1e-5)."""
    return logits / jnp.maximum(jnp.asarray(temperature, jnp.float32), MIN_TEMPERATURE)


def order_key(x: jax.Array) -> jax.Array:
    """float32[...] -> uint32[...] with the same order (-inf lowest; NaN unsupported)."""
    bits = jax.lax.bitcast_convert_type(x.astype(jnp.float32), jnp.uint32)
    negative = (bits >> 31) == 1
    return jnp.where(negative, ~bits, bits | jnp.uint32(0x80000000))


def _bisect(lo: jax.Array, hi: jax.Array, go_up) -> jax.Array:
    """Per row, the boundary in [lo, hi] (uint32[B, 1]) of a monotone predicate.

    ``go_up(mid) -> bool[B, 1]``: True moves ``lo`` to ``mid``, False moves ``hi`` to
    ``mid - 1`` (with the upper middle, so 32 rounds always close the interval).
    """

    def round_(_, bounds):
        lo, hi = bounds
        gap = hi - lo
        mid = lo + (gap >> 1) + (gap & 1)
        up = go_up(mid)
        return jnp.where(up, mid, lo), jnp.where(up, hi, jnp.maximum(mid, 1) - 1)

    lo, _ = jax.lax.fori_loop(0, _BITS, round_, (lo, hi))
    return lo


def top_k_filter(logits: jax.Array, k: int) -> jax.Array:
    """float[B, V]: logits below the k-th largest of their row become -inf (k <= 0: off)."""
    if k <= 0 or k >= logits.shape[-1]:
        return logits
    key = order_key(logits)
    lo = jnp.min(key, axis=-1, keepdims=True)
    hi = jnp.max(key, axis=-1, keepdims=True)
    # The k-th largest key: the largest t with at least k keys >= t.
    count_at_least = lambda t: jnp.sum(key >= t, axis=-1, keepdims=True) >= k
    kth = _bisect(lo, hi, count_at_least)
    return jnp.where(key < kth, -jnp.inf, logits)


def top_p_filter(logits: jax.Array, top_p) -> jax.Array:
    """float[B, V]: tokens outside the nucleus of mass ``top_p`` become -inf."""
    probs = jax.nn.softmax(logits.astype(jnp.float32), axis=-1)
    key = order_key(probs)
    top_p = jnp.asarray(top_p, jnp.float32)
    # Token i stays iff mass_above(key_i) <= p, with mass_above(t) the probability of
    # the tokens whose key exceeds t (non-increasing in t): keep keys >= the smallest
    # such t. Bisect for the largest t where the mass above t - 1 still exceeds p.
    mass_above = lambda t: jnp.sum(jnp.where(key > t, probs, 0.0), axis=-1, keepdims=True)
    lo = jnp.min(key, axis=-1, keepdims=True)
    hi = jnp.max(key, axis=-1, keepdims=True)
    cut = _bisect(lo, hi, lambda t: mass_above(t - 1) > top_p)
    keep = (key >= cut) | (mass_above(lo - 1) <= top_p) | (top_p >= 1.0)
    return jnp.where(keep, logits, -jnp.inf)


def guide(cond: jax.Array, uncond: jax.Array, scale, min_p=0.0) -> jax.Array:
    """Classifier-free guidance: ``uncond + scale * (cond - uncond)`` (float[..., V]).

    ``min_p`` > 0 keeps guidance among the tokens the conditional branch finds plausible:
    a token whose conditional probability is below ``min_p`` times that of the
    conditional's best token becomes -inf. Where both branches give a token almost no
    probability but the unconditional one gives it far less, ``cond - uncond`` is large
    and plain guidance lifts an implausible token to the top; the filter stops that.
    ``min_p`` 0 (the reference) changes nothing.
    """
    guided = uncond + jnp.asarray(scale, jnp.float32) * (cond - uncond)
    # p_c(t) / max p_c < min_p  <=>  cond_t < max(cond) + log(min_p); log(0) = -inf.
    floor = jnp.max(cond, axis=-1, keepdims=True) + jnp.log(jnp.asarray(min_p, jnp.float32))
    return jnp.where(cond < floor, -jnp.inf, guided)


def draw(
    keys: jax.Array,
    logits: jax.Array,
    *,
    temperature,
    top_k: int = 0,
    top_p=1.0,
    nucleus: bool = True,
    greedy: bool = False,
) -> jax.Array:
    """One token per row: int32[B] indices into the last axis of ``logits`` float[B, V].

    Args:
      keys: PRNG keys key[B], one per row (unused when greedy).
      temperature, top_p: float scalars (may be traced: no recompile when they change).
      top_k: static; <= 0 turns it off.
      nucleus: static; False promises ``top_p >= 1`` and skips the top-p pass.
      greedy: argmax of the raw logits.
    """
    if greedy:
        return jnp.argmax(logits, axis=-1).astype(jnp.int32)
    logits = apply_temperature(logits.astype(jnp.float32), temperature)
    logits = top_k_filter(logits, top_k)
    if nucleus:
        logits = top_p_filter(logits, top_p)
    return jax.vmap(jax.random.categorical)(keys, logits).astype(jnp.int32)
