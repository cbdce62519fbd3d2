"""The KV cache: a pytree of fixed-size arrays, so a jitted decode loop can carry it.

One layout serves the prefill and per-token decoding: each layer's keys and values are
their own ``[B, K, S, D]`` buffer (batch, key heads, slots, head dim). A step writes one
slot of each in place and attention reads them as they lie (batch and head leading, as
the attention contraction wants them): no per-step copy of the cache, which a stacked
``[L, ...]`` cache under a layer scan would cost (slice each layer out, stack it back).

All rows write at the same slot (``index``); rows differ through their own ``positions``
and ``segment_ids``. A row whose prompt is shorter than the others is padded (left or
right) with segment id 0: those slots hold segment 0 forever and no real token (segment
id >= 1) attends to them. Positions drive RoPE and the sliding window, slot order drives
causality, so both padding sides give the same result as the unpadded row.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx, struct

# Logical axis names for sharding a cache (see liquid_jax.parallel); "k" and "v" name the
# axes of each layer's buffer.
CACHE_AXES = {
    "k": ("batch", "kv_heads", "cache_length", "head_dim"),
    "v": ("batch", "kv_heads", "cache_length", "head_dim"),
    "segment_ids": ("batch", "cache_length"),
    "positions": ("batch", "cache_length"),
    "index": (),
}


@struct.dataclass
class KVCache:
    """Keys and values of every layer.

    Attributes:
      k, v: one ``dtype[B, K, S, head_dim]`` per layer (S = max_len slots).
      segment_ids: int32[B, S]; 0 marks an empty or padding slot.
      positions: int32[B, S]; the RoPE position of the token in each slot.
      index: int32[]; the next slot to write (shared by all rows).
    """

    k: tuple[jax.Array, ...]
    v: tuple[jax.Array, ...]
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
        shape = (batch, num_kv_heads, max_len, head_dim)
        return cls(
            k=tuple(jnp.zeros(shape, dtype) for _ in range(num_layers)),
            v=tuple(jnp.zeros(shape, dtype) for _ in range(num_layers)),
            segment_ids=jnp.zeros((batch, max_len), jnp.int32),
            positions=jnp.zeros((batch, max_len), jnp.int32),
            index=jnp.zeros((), jnp.int32),
        )

    @property
    def max_len(self) -> int:
        return self.segment_ids.shape[1]

    def logical_axes(self) -> KVCache:
        """The same pytree with a tuple of logical axis names in place of each array."""
        layers = len(self.k)
        return self.replace(
            k=(CACHE_AXES["k"],) * layers,
            v=(CACHE_AXES["v"],) * layers,
            segment_ids=CACHE_AXES["segment_ids"],
            positions=CACHE_AXES["positions"],
            index=CACHE_AXES["index"],
        )

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

    def grow(self, max_len: int) -> KVCache:
        """The same cache with ``max_len`` >= ``self.max_len`` slots, the new ones empty
        (segment 0): a decode loop can run on a cache sized to its current phase."""
        extra = max_len - self.max_len
        if extra < 0:
            raise ValueError(f"KVCache.grow: {max_len} slots < the current {self.max_len}")
        if extra == 0:
            return self
        pad_kv = lambda x: jnp.pad(x, ((0, 0), (0, 0), (0, extra), (0, 0)))
        pad_row = lambda x: jnp.pad(x, ((0, 0), (0, extra)))
        return self.replace(
            k=tuple(map(pad_kv, self.k)),
            v=tuple(map(pad_kv, self.v)),
            segment_ids=pad_row(self.segment_ids),
            positions=pad_row(self.positions),
        )


@struct.dataclass
class DecodeWeights:
    """``Transformer.decode_weights``: layers: one ``nnx.State`` per decoder layer (compute
    dtype); head: dtype[D, hi - lo], the head's columns for ids ``[lo, hi)`` (int8 with
    ``head_scale: float[hi - lo]`` when the head is weight-only quantized)."""

    layers: tuple
    head: jax.Array
    graphdef: nnx.GraphDef = struct.field(pytree_node=False)
    lo: int = struct.field(pytree_node=False)
    head_scale: jax.Array | None = None


def is_axes(x) -> bool:
    """A leaf of ``KVCache.logical_axes()``: one array's tuple of axis names."""
    return isinstance(x, tuple) and all(isinstance(a, str) for a in x)


def write_layer(cache_bksd: jax.Array, new_btkd: jax.Array, index: jax.Array) -> jax.Array:
    """One layer's k or v: writes ``new`` [B, T, K, D] into slots ``[index, index + T)``.

    The caller sizes the cache: writes past the end are clamped by XLA (silently).
    """
    new_bktd = jnp.swapaxes(new_btkd, 1, 2).astype(cache_bksd.dtype)
    return jax.lax.dynamic_update_slice(cache_bksd, new_bktd, (0, 0, index, 0))
