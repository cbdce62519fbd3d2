"""A small greedy decoder over the KV cache (the full sampler lives in ``sample/``)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from flax import nnx

from liquid_jax.models.transformer import Transformer


def greedy_generate(model: Transformer, prompt_tokens: jax.Array, num_new_tokens: int):
    """Prefill the prompt, then ``num_new_tokens`` argmax steps in a ``lax.fori_loop``.

    Args:
      model: a ``Transformer``.
      prompt_tokens: int32[B, P], no padding (every row P real tokens).
      num_new_tokens: how many tokens to append.

    Returns:
      int32[B, num_new_tokens]: the generated tokens (no stopping at EOS).
    """
    graphdef, state = nnx.split(model)
    return _greedy(graphdef, state, jnp.asarray(prompt_tokens, jnp.int32), int(num_new_tokens))


@functools.partial(jax.jit, static_argnums=(0, 3))
def _greedy(graphdef, state, prompt, num_new):
    # Modules are rebuilt inside each trace (NNX refuses modules from an outer trace).
    forward = lambda tokens, cache: nnx.merge(graphdef, state)(tokens, cache=cache)
    b, p = prompt.shape
    cache = nnx.merge(graphdef, state).init_cache(b, p + num_new)
    logits, cache = forward(prompt, cache)
    first = jnp.argmax(logits[:, -1], axis=-1).astype(jnp.int32)
    out = jnp.zeros((b, num_new), jnp.int32).at[:, 0].set(first)

    def step(i, carry):
        out, cache = carry
        token = jax.lax.dynamic_slice_in_dim(out, i - 1, 1, axis=1)
        logits, cache = forward(token, cache)
        nxt = jnp.argmax(logits[:, -1], axis=-1).astype(jnp.int32)
        return jax.lax.dynamic_update_slice_in_dim(out, nxt[:, None], i, axis=1), cache

    out, _ = jax.lax.fori_loop(1, num_new, step, (out, cache))
    return out
