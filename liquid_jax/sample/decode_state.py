"""The decode loop's carry, ``DecodeState``, and how it lies on a mesh: the KV cache by
its logical axes, every per-row array split over the batch axes."""

from __future__ import annotations

import jax
from flax import struct
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from liquid_jax.models.kv_cache import KVCache, is_axes
from liquid_jax.parallel.rules import logical_to_mesh
from liquid_jax.parallel.sharding import fit_spec


@struct.dataclass
class DecodeState:
    """The loop carry. R rows (2 per sample with CFG), B samples, N = max_new_tokens.

    cache: KVCache of R rows; last: int32[R] the token to feed next; positions: int32[R]
    its position; tokens: int32[B, N] drawn so far; done: bool[B]; keys: key[B] per-row
    PRNG keys; step: int32[] tokens drawn so far.
    """

    cache: KVCache
    last: jax.Array
    positions: jax.Array
    tokens: jax.Array
    done: jax.Array
    keys: jax.Array
    step: jax.Array


def grow_cache(cache_len: int, ds: DecodeState) -> DecodeState:
    """The next phase's state: the cache grown to ``cache_len`` slots."""
    return ds.replace(cache=ds.cache.grow(cache_len))


def _named(mesh: Mesh, names, shape) -> NamedSharding:
    spec = logical_to_mesh(names, mesh.axis_names)
    return NamedSharding(mesh, fit_spec(spec, tuple(shape), mesh))


def decode_state_shardings(abstract: DecodeState, mesh: Mesh) -> DecodeState:
    """A ``DecodeState`` of ``NamedSharding``s for ``abstract`` (shapes only): the cache
    by its logical axes, per-row arrays over ``batch``, the step replicated."""
    c = abstract.cache
    named = lambda names, x: _named(mesh, names, x.shape)
    cache = jax.tree.map(named, c.logical_axes(), c, is_leaf=is_axes)
    row = lambda x: _named(mesh, ("batch",) + (None,) * (x.ndim - 1), x.shape)
    return DecodeState(
        cache=cache,
        last=row(abstract.last),
        positions=row(abstract.positions),
        tokens=row(abstract.tokens),
        done=row(abstract.done),
        keys=row(abstract.keys),
        step=NamedSharding(mesh, P()),
    )
