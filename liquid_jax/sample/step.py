"""One decode step (one new token per row) over a cache laid out for decoding.

``Transformer.__call__`` with its ``KVCache`` is right for the prefill, but per generated
token it moves the whole cache several times: the layer scan slices each layer's keys
and values out of the stacked ``[L, B, S, K, D]`` arrays and stacks them back, and the
attention contraction over ``[B, S, K, D]`` makes XLA transpose keys and values first.
A decode step is memory-bound, so those copies dominate (several times the cost of the
step's arithmetic at a few hundred tokens of context).

``StepCache`` keeps each layer's keys and values as their own ``[B, K, S, D]`` buffer in
the loop carry: a step writes one slot in place and attention reads the buffer as it
lies. The layers run unrolled (compile time grows with depth, as for any decoder-only
sampler that unrolls; the prefill stays scanned). The step reuses the model's own
sub-modules (norms, projections, MLP, RoPE, logits); the tests hold it equal to the full
forward pass and to transformers.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx, struct

from liquid_jax.models.attention import MASK_VALUE
from liquid_jax.models.kv_cache import KVCache
from liquid_jax.models.rope import apply_rope, inverse_frequencies, rope_tables
from liquid_jax.models.transformer import ACTIVATION_AXES, Transformer
from liquid_jax.parallel import constrain

# Logical axes of one layer's keys or values in a StepCache.
LAYER_AXES = ("batch", "kv_heads", "cache_length", "head_dim")


@struct.dataclass
class StepCache:
    """k, v: one ``dtype[B, K, S, D]`` per layer; segment_ids, positions: int32[B, S]
    (0 marks an empty or padding slot); index: int32[] the next slot to write."""

    k: tuple[jax.Array, ...]
    v: tuple[jax.Array, ...]
    segment_ids: jax.Array
    positions: jax.Array
    index: jax.Array

    @classmethod
    def from_kv_cache(cls, cache: KVCache) -> StepCache:
        """The model's prefilled ``KVCache`` ([L, B, S, K, D]) in decode layout."""
        layers = cache.k.shape[0]
        to_layer = lambda x, i: jnp.swapaxes(x[i], 1, 2)
        return cls(
            k=tuple(to_layer(cache.k, i) for i in range(layers)),
            v=tuple(to_layer(cache.v, i) for i in range(layers)),
            segment_ids=cache.segment_ids,
            positions=cache.positions,
            index=cache.index,
        )


def unstack_layers(model: Transformer):
    """The scanned (stacked) decoder layers as ``(graphdef, [state of layer i])``.

    Done once outside the decode loop: slicing the stacked weights inside it would copy
    every layer's weights at every step.
    """
    graphdef, state = nnx.split(model.layers)
    count = model.spec.num_layers
    return graphdef, [jax.tree.map(lambda x, i=i: x[i], state) for i in range(count)]


def head_columns(model: Transformer, lo: int, hi: int) -> jax.Array:
    """The output head for token ids ``[lo, hi)`` only: dtype[D, hi - lo].

    Taken once outside the decode loop. T2I draws only image codes, so each step
    multiplies by the codebook's rows of the head instead of the whole vocabulary (the
    text rows are most of the table for Liquid-7B: 256000 of 264192).
    """
    if model.lm_head is None:  # tied: the embedding rows, transposed
        w = model.embed_tokens.embedding[...][lo:hi].T
    else:
        w = model.lm_head.kernel[...][:, lo:hi]
    return w.astype(model.spec.dtype)


def _attention(attn, x_b1d, cos, sin, k_cache, v_cache, mask_bs, index):
    """One layer's attention for one token; returns ([B, 1, D], new k, new v)."""
    b = x_b1d.shape[0]
    q = apply_rope(attn.q_proj(x_b1d), cos, sin)[:, 0]  # [B, H, D]
    k = apply_rope(attn.k_proj(x_b1d), cos, sin)[:, 0]  # [B, K, D]
    v = attn.v_proj(x_b1d)[:, 0]
    at = (0, 0, index, 0)
    k_cache = jax.lax.dynamic_update_slice(k_cache, k[:, :, None].astype(k_cache.dtype), at)
    v_cache = jax.lax.dynamic_update_slice(v_cache, v[:, :, None].astype(v_cache.dtype), at)
    heads, kv_heads, dim = q.shape[1], k_cache.shape[1], q.shape[2]
    q = q.reshape(b, kv_heads, heads // kv_heads, dim)  # head h uses key head h // group
    keys, values = k_cache.astype(q.dtype), v_cache.astype(q.dtype)
    scores = jnp.einsum("bkgd,bksd->bkgs", q, keys, preferred_element_type=jnp.float32)
    scores = scores * attn.scale
    if attn.softcap is not None:
        scores = jnp.tanh(scores / attn.softcap) * attn.softcap
    scores = jnp.where(mask_bs[:, None, None, :], scores, MASK_VALUE)
    probs = jax.nn.softmax(scores, axis=-1).astype(values.dtype)
    out = jnp.einsum("bkgs,bksd->bkgd", probs, values).reshape(b, 1, heads, dim)
    return attn.o_proj(out), k_cache, v_cache


def decode_step(
    model: Transformer,
    layers,
    head: jax.Array,
    tokens: jax.Array,
    positions: jax.Array,
    cache: StepCache,
) -> tuple[jax.Array, StepCache]:
    """Feeds one token per row (segment 1) and returns its next-token logits.

    Args:
      model: the transformer (its embedding and final norm are used).
      layers: ``unstack_layers(model)``.
      head: ``head_columns(model, lo, hi)``: which token ids get logits.
      tokens, positions: int32[B].
      cache: the rows' ``StepCache``; the token is written at ``cache.index``.

    Returns:
      (logits float32[B, hi - lo] for ids ``lo..hi-1`` (soft-capped as the model), cache).
    """
    spec = model.spec
    x = constrain(model.embed_tokens(tokens[:, None]), ACTIVATION_AXES)
    inv_freq = inverse_frequencies(spec.head_dim, spec.rope_theta, spec.rope_scaling)
    cos, sin = rope_tables(positions[:, None], inv_freq, spec.dtype)
    at = (0, cache.index)
    segment_ids = jax.lax.dynamic_update_slice(
        cache.segment_ids, jnp.ones_like(tokens)[:, None], at
    )
    cache_positions = jax.lax.dynamic_update_slice(cache.positions, positions[:, None], at)
    slots = jnp.arange(segment_ids.shape[1], dtype=jnp.int32)
    visible = (segment_ids == 1) & (slots[None, :] <= cache.index)
    distance = positions[:, None] - cache_positions

    new_k, new_v = [], []
    graphdef, states = layers
    for i, layer_state in enumerate(states):
        layer = nnx.merge(graphdef, layer_state)
        window = spec.window_sizes[i]
        mask = visible & (distance < window) if window > 0 else visible
        h, k_i, v_i = _attention(
            layer.self_attn,
            layer.input_layernorm(x),
            cos,
            sin,
            cache.k[i],
            cache.v[i],
            mask,
            cache.index,
        )
        if layer.sandwich:
            x = x + layer.post_attention_layernorm(h)
            x = x + layer.post_feedforward_layernorm(layer.mlp(layer.pre_feedforward_layernorm(x)))
        else:
            x = x + h
            x = x + layer.mlp(layer.post_attention_layernorm(x))
        x = constrain(x, ACTIVATION_AXES)
        new_k.append(k_i)
        new_v.append(v_i)

    x = model.norm(x)[:, 0]
    logits = jnp.dot(x.astype(head.dtype), head, preferred_element_type=jnp.float32)
    if spec.final_logit_softcap is not None:
        cap = spec.final_logit_softcap
        logits = jnp.tanh(logits / cap) * cap
    cache = cache.replace(
        k=tuple(new_k),
        v=tuple(new_v),
        segment_ids=segment_ids,
        positions=cache_positions,
        index=cache.index + 1,
    )
    return logits, cache
