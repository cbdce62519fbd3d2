"""The KV cache: a pytree of fixed-size arrays, so a jitted decode loop can carry it.

All rows write at the same slot (``index``); rows differ through their own ``positions``
and ``segment_ids``. A row whose prompt is shorter than the others is padded (left or
right) with segment id 0: those slots hold segment 0 forever and no real token (segment
id >= 1) attends to them. Positions drive RoPE and the sliding window, slot order drives
causality, so both padding sides give the same result as the unpadded row.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

# Logical axis names for sharding a cache (see liquid_jax.parallel).
CACHE_AXES = {
    "k": ("layers", "batch", "cache_length", "kv_heads", "head_dim"),
    "v": ("layers", "batch", "cache_length", "kv_heads", "head_dim"),
    "segment_ids": ("batch", "cache_length"),
    "positions": ("batch", "cache_length"),
    "index": (),
}


@struct.dataclass
class KVCache:
    """Keys and values of every layer.

    Attributes:
      k, v: dtype[L, B, S, K, head_dim] (S = max_len slots).
      segment_ids: int32[B, S]; 0 marks an empty or padding slot.
      positions: int32[B, S]; the RoPE position of the token in each slot.
      index: int32[]; the next slot to write (shared by all rows).
    """

    k: jax.Array
    v: jax.Array
    segment_ids: jax.Array
    positions: jax.Array
    index: jax.Array

    @classmethod
    def create(
        cls,
        num_layers: int,
        batch: int,
        max_len: int,
        num_kv_heads: int,
        head_dim: int,
        dtype=jnp.float32,
    ) -> KVCache:
        shape = (num_layers, batch, max_len, num_kv_heads, head_dim)
        return cls(
            k=jnp.zeros(shape, dtype),
            v=jnp.zeros(shape, dtype),
            segment_ids=jnp.zeros((batch, max_len), jnp.int32),
            positions=jnp.zeros((batch, max_len), jnp.int32),
            index=jnp.zeros((), jnp.int32),
        )

    @property
    def max_len(self) -> int:
        return self.k.shape[2]

    def logical_axes(self) -> KVCache:
        """The same pytree with a tuple of logical axis names in place of each array."""
        return KVCache(**CACHE_AXES)

    def write_tokens(self, segment_ids: jax.Array, positions: jax.Array) -> KVCache:
        """Records T new tokens' segment ids / positions (int32[B, T]) at ``index``.

        Keys and values are written per layer (``write_layer``); ``index`` advances in
        ``advance`` once every layer has written.
        """
        at = (0, self.index)
        return self.replace(
            segment_ids=jax.lax.dynamic_update_slice(self.segment_ids, segment_ids, at),
            positions=jax.lax.dynamic_update_slice(self.positions, positions, at),
        )

    def advance(self, num_tokens: int) -> KVCache:
        return self.replace(index=self.index + num_tokens)


def write_layer(cache_bskd: jax.Array, new_btkd: jax.Array, index: jax.Array) -> jax.Array:
    """One layer's k or v: writes ``new`` [B, T, K, D] into slots ``[index, index + T)``.

    The caller sizes the cache: writes past the end are clamped by XLA (silently).
    """
    return jax.lax.dynamic_update_slice(
        cache_bskd, new_btkd.astype(cache_bskd.dtype), (0, index, 0, 0)
    )
