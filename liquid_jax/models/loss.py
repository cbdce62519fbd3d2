"""The next-token loss of one position, shared by training and every teacher-forced score."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from liquid_jax.models.layers import select


def token_nll(logits: jax.Array, targets: jax.Array) -> jax.Array:
    """-log softmax(logits)[target] at each position, in float32.

    logits: float[..., V], the prediction made at each position; targets: int32[...],
    the token each position must predict (for a sequence, ``tokens[:, 1:]`` against
    ``logits[:, :-1]``) -> float32[...].
    """
    logits = logits.astype(jnp.float32)
    log_z = jax.nn.logsumexp(logits, axis=-1)
    return log_z - target_logit(logits, targets)


def target_logit(logits: jax.Array, targets: jax.Array) -> jax.Array:
    """``logits[..., target]``: float[..., V], int32[...] -> float[...].

    A masked sum over the vocabulary rather than a gather: with the vocabulary split over
    devices (the loss's vocabulary-parallel head) each device sums its own columns and
    one small all-reduce adds them, where a gather would first collect the whole logits.
    """
    hit = jnp.arange(logits.shape[-1], dtype=jnp.int32) == targets[..., None]
    return jnp.sum(select(hit, logits, 0), axis=-1)


def is_argmax(logits: jax.Array, targets: jax.Array) -> jax.Array:
    """``jnp.argmax(logits, -1) == targets`` (argmax: the first index of the largest
    value, so a tie counts for the lowest id only): float[..., V], int32[...] -> bool[...].

    Reductions over the vocabulary that each compare it with the targets, which partition
    along a vocabulary split over devices; argmax's paired value-index reduction does not,
    and an index array [..., V] would be computed once outside the loss's chunk loop.
    """
    top = jnp.max(logits, axis=-1, keepdims=True)
    at_top = logits == top
    index = jnp.arange(logits.shape[-1], dtype=jnp.int32)
    t = targets[..., None]
    hit = jnp.any(at_top & (index == t), axis=-1)
    earlier = jnp.any(at_top & (index < t), axis=-1)
    return hit & ~earlier
