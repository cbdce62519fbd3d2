"""Compiled, data-parallel VQGAN encode/decode: pure functions of (graphdef, state, batch).

The VQGAN is small (about 70M parameters for Chameleon's) and only ever data-parallel:
its state is replicated and the batch is split over the mesh's batch axes
(``liquid_jax.parallel.host_batch.batch_sharding``).

- ``make_encode_fn(graphdef, mesh)`` / ``make_decode_fn(graphdef, mesh)``: the jitted
  pure functions, for callers that assemble global batches themselves (multi-host
  offline code extraction passes ``host_local_to_global`` batches).
- ``encode_images(model, images, mesh=None)`` / ``decode_codes(model, codes, mesh=None)``:
  single-process conveniences that check inputs eagerly, pad the batch to a multiple of
  the data-parallel size, place state and batch, and strip the padding again.
"""

from __future__ import annotations

import functools
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from liquid_jax.models.vqgan import VQGAN, check_codes, check_image_shape
from liquid_jax.parallel.host_batch import batch_sharding


def _encode(graphdef, state, images):
    return nnx.merge(graphdef, state).encode(images)


def _decode(graphdef, state, codes):
    return nnx.merge(graphdef, state).decode(codes)


def _compile(fn, graphdef, mesh: Mesh | None, in_ndim: int, out_ndim: int):
    pure = functools.partial(fn, graphdef)
    if mesh is None:
        return jax.jit(pure)
    replicated = NamedSharding(mesh, P())
    return jax.jit(
        pure,
        # One sharding for the whole state: a pytree prefix, every leaf replicated.
        in_shardings=(replicated, batch_sharding(mesh, in_ndim)),
        out_shardings=batch_sharding(mesh, out_ndim),
    )


@functools.lru_cache(maxsize=16)
def make_encode_fn(graphdef, mesh: Mesh | None = None):
    """``fn(state, images float[B, H, W, 3]) -> codes int32[B, H/f, W/f]``, jitted.

    With a mesh, ``state`` is replicated and ``B`` must divide evenly over the batch
    axes. Cached per (graphdef, mesh), so repeated calls reuse the compiled function.
    """
    return _compile(_encode, graphdef, mesh, 4, 3)


@functools.lru_cache(maxsize=16)
def make_decode_fn(graphdef, mesh: Mesh | None = None):
    """``fn(state, codes int32[B, h, w]) -> images float32[B, h*f, w*f, 3]``, jitted."""
    return _compile(_decode, graphdef, mesh, 3, 4)


def _data_parallel_size(mesh: Mesh, ndim: int) -> int:
    spec = batch_sharding(mesh, ndim).spec
    axes = spec[0] if spec else None
    axes = (axes,) if isinstance(axes, str) else tuple(axes or ())
    return math.prod(mesh.shape[a] for a in axes)


def _run(make_fn, model: VQGAN, batch, mesh: Mesh | None):
    graphdef, state = nnx.split(model)
    fn = make_fn(graphdef, mesh)
    if mesh is None:
        return fn(state, batch)
    if jax.process_count() > 1:
        raise ValueError(
            "encode_images/decode_codes take one process's whole batch; with several "
            "processes call make_encode_fn/make_decode_fn on host_local_to_global batches"
        )
    n = batch.shape[0]
    dp = _data_parallel_size(mesh, batch.ndim)
    padded = -(-n // dp) * dp
    if padded != n:
        # Repeat the last row: valid input, so padding never trips the range checks.
        pad = jnp.repeat(jnp.asarray(batch)[-1:], padded - n, axis=0)
        batch = jnp.concatenate([jnp.asarray(batch), pad], axis=0)
    batch = jax.device_put(batch, batch_sharding(mesh, batch.ndim))
    state = jax.device_put(state, NamedSharding(mesh, P()))  # no-op when already there
    out = fn(state, batch)
    return out[:n] if padded != n else out


def encode_images(model: VQGAN, images, mesh: Mesh | None = None) -> jax.Array:
    """images: float[B, H, W, 3] in [-1, 1] -> codes int32[B, H/f, W/f].

    H and W may differ but must be multiples of the downsample factor (ValueError
    otherwise, before anything is compiled); integer images fail chex's dtype check.
    With ``mesh`` the batch is split over its data-parallel axes; any B works (the batch
    is padded, then trimmed).
    """
    check_image_shape(np.shape(images), model.config)
    images = images if isinstance(images, jax.Array) else np.asarray(images)
    # uint8 pixels would pass the float32 cast below and encode as blown-out images.
    msg = "encode_images: images must be float[B, H, W, 3] in [-1, 1], not uint8 pixels"
    chex.assert_type(images, float, custom_message=msg)
    images = jnp.asarray(images, jnp.float32)
    return _run(make_encode_fn, model, images, mesh)


def decode_codes(model: VQGAN, codes, mesh: Mesh | None = None) -> jax.Array:
    """codes: int[B, h, w] in [0, n_embed) -> images float32[B, h*f, w*f, 3].

    Codes outside the codebook raise ValueError (checked on the host before jitting).
    """
    codes = np.asarray(codes) if not isinstance(codes, jax.Array) else codes
    check_codes(codes, model.config)
    return _run(make_decode_fn, model, jnp.asarray(codes, jnp.int32), mesh)
