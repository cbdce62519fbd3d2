"""The decoder layers over a ``KVCache``: the one loop that prefill and per-token decoding
share, whether the layers come out of a ``Transformer``'s stack or a ``DecodeModel``.

The layers run one after another (not under ``nnx.scan``): each reads and writes its own
cache buffers in place, which a scan over a stacked ``[L, ...]`` cache would copy (see
``kv_cache``), and each reads its own weights as they lie, which a scan would need
stacked (the sampler holds them per layer, ``decode_model``).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp

from liquid_jax.models.attention import segment_causal_mask, window_mask
from liquid_jax.models.kv_cache import KVCache
from liquid_jax.parallel import constrain

# The activations' logical axes, as the training forward constrains them.
ACTIVATION_AXES = ("batch", "length", "embed")


def run_cached_layers(
    layers: Sequence,
    window_sizes: Sequence[int],
    x_btd: jax.Array,
    cos: jax.Array,
    sin: jax.Array,
    positions: jax.Array,
    segment_ids: jax.Array,
    cache: KVCache,
) -> tuple[jax.Array, KVCache]:
    """T new tokens through every layer over the cache (XLA attention, dense mask).

    Args:
      layers: one ``DecoderLayer`` per layer, in order.
      window_sizes: each layer's sliding window (<= 0: none).
      x_btd: the embedded tokens dtype[B, T, D]; cos, sin: their RoPE tables.
      positions, segment_ids: int32[B, T] of the new tokens (written at ``cache.index``).

    Returns:
      (hidden states before the final norm [B, T, D], the cache advanced by T).
    """
    t = x_btd.shape[1]
    q_slots = cache.index + jnp.arange(t, dtype=jnp.int32)
    cache = cache.write_tokens(segment_ids, positions)
    kv_slots = jnp.arange(cache.max_len, dtype=jnp.int32)
    base_mask = segment_causal_mask(segment_ids, cache.segment_ids, q_slots, kv_slots)
    new_k, new_v = [], []
    for i, layer in enumerate(layers):
        window = window_sizes[i]
        mask = (
            base_mask & window_mask(positions, cache.positions, window) if window > 0 else base_mask
        )
        x_btd, (k, v) = layer(x_btd, cos, sin, mask, (cache.k[i], cache.v[i]), cache.index)
        x_btd = constrain(x_btd, ACTIVATION_AXES)
        new_k.append(k)
        new_v.append(v)
    cache = cache.replace(k=tuple(new_k), v=tuple(new_v)).advance(t)
    return x_btd, cache
