"""The next-token loss of one position, shared by training and every teacher-forced score."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def token_nll(logits: jax.Array, targets: jax.Array) -> jax.Array:
    """-log softmax(logits)[target] at each position, in float32.

    logits: float[..., V], the prediction made at each position; targets: int32[...],
    the token each position must predict (for a sequence, ``tokens[:, 1:]`` against
    ``logits[:, :-1]``) -> float32[...].
    """
    logits = logits.astype(jnp.float32)
    log_z = jax.nn.logsumexp(logits, axis=-1)
    picked = jnp.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]
    return log_z - picked
