"""Self-attention: masks for packed sequences, sliding windows, soft-capping, KV cache.

Masks are boolean ``[B, T, S]`` (query t may see key s). A key is visible when it is in
the same segment, not later in the sequence (slot order), and, on sliding-window layers,
fewer than ``window`` positions behind the query. The attention itself is plain XLA
einsums (GQA without repeating keys), the reference of the fused kernels that
``TransformerSpec.attention`` selects (``attention_kernels``): those read a
``SegmentMask`` (segment ids and the layer's window) instead of the dense mask.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from liquid_jax.models.attention_blocks import (
    MASK_VALUE,
    block_scores,
    causal_block_attention,
    heads_first,
    heads_last,
    query_block,
    scaled,
)
from liquid_jax.models.attention_kernels import SegmentMask, fused_attention
from liquid_jax.models.kv_cache import write_layer
from liquid_jax.models.layers import Dense, select
from liquid_jax.models.rope import apply_rope
from liquid_jax.models.spec import JAX_REMAT_POLICIES, TransformerSpec


def segment_causal_mask(
    q_segments: jax.Array, kv_segments: jax.Array, q_slots: jax.Array, kv_slots: jax.Array
) -> jax.Array:
    """Same segment and not in the future.

    q_segments: int32[B, T]; kv_segments: int32[B, S]; q_slots: int32[T]; kv_slots:
    int32[S] (sequence / cache slot of each token) -> bool[B, T, S].
    """
    same = q_segments[:, :, None] == kv_segments[:, None, :]
    causal = kv_slots[None, None, :] <= q_slots[None, :, None]
    return same & causal


def window_mask(q_positions: jax.Array, kv_positions: jax.Array, window: jax.Array) -> jax.Array:
    """Keys fewer than ``window`` positions behind the query; all keys when window <= 0.

    q_positions: int32[B, T]; kv_positions: int32[B, S]; window: int32[] -> bool[B, T, S].
    ``window`` is traced so that layers with different windows share one scanned body.
    """
    distance = q_positions[:, :, None] - kv_positions[:, None, :]
    return (window <= 0) | (distance < window)


def dot_product_attention(
    q_bthd: jax.Array,
    k_bskd: jax.Array,
    v_bskd: jax.Array,
    mask_bts: jax.Array,
    scale: float,
    softcap: float | None = None,
    causal_chunk: int = 0,
    remat_blocks: bool = False,
) -> jax.Array:
    """Grouped-query attention.

    q: [B, T, H, D]; k, v: [B, S, K, D] with H a multiple of K (query head h uses key
    head h // (H / K), as HF's ``repeat_kv``); mask: bool[B, T, S] -> [B, T, H, D].
    Scores and softmax run in float32.

    ``causal_chunk`` > 0 (only for S == T with a mask that hides every later key, as in
    training): queries in blocks of that many, each block attending only the keys up to
    its own end (``_causal_blocks``): the same result up to rounding, for less work.
    ``remat_blocks``: the blocks run as tiles with their own backward
    (``attention_blocks``), which recomputes each tile's scores and probabilities when it
    reaches it instead of keeping every block's from the forward.
    """
    t, s = q_bthd.shape[1], k_bskd.shape[1]
    if causal_chunk and t == s and t > causal_chunk and t % causal_chunk == 0:
        return _causal_blocks(
            q_bthd, k_bskd, v_bskd, mask_bts, scale, softcap, causal_chunk, remat_blocks
        )
    return _attention(q_bthd, k_bskd, v_bskd, mask_bts, scale, softcap)


def _causal_blocks(q_bthd, k_bskd, v_bskd, mask_bts, scale, softcap, chunk: int, remat=False):
    """``dot_product_attention`` for a causal mask, in blocks of ``chunk`` queries.

    Keys past a block's end are masked for all its queries, so each block reads only the
    keys before its end: (n + 1) / 2n of the work for n blocks. Heads lead the layout,
    so each block is one batched matmul per key head, and a block's scores fit in a CPU's
    cache: at T = 256 (blocks of 32) attention's forward and backward ran about twice as
    fast as in one block on a 2-core CPU (docs/demo.md). ``remat``: the same blocks as
    ``attention_blocks``' tiles, whose backward recomputes one tile at a time.
    """
    if remat:
        return causal_block_attention(q_bthd, k_bskd, v_bskd, mask_bts, scale, softcap, chunk)
    b, t, h, d = q_bthd.shape
    q, k, v = heads_first(q_bthd, k_bskd, v_bskd)
    kh, g = q.shape[1], q.shape[2]
    blocks = []
    for start in range(0, t, chunk):
        end = start + chunk
        q_block = query_block(q, start // chunk, chunk)
        visible = mask_bts[:, None, None, start:end, :end]
        probs = jax.nn.softmax(block_scores(q_block, k[:, :, :end], visible, scale, softcap))
        probs = probs.astype(v.dtype).reshape(b, kh, g * chunk, end)
        out = jnp.einsum("bkns,bksd->bknd", probs, v[:, :, :end])
        blocks.append(out.reshape(b, kh, g, chunk, d))
    return heads_last(blocks)


def _attention(q_bthd, k, v, mask_bts, scale, softcap, kv_layout: str = "bskd"):
    """Keys and values ``[B, S, K, D]`` (``kv_layout="bskd"``, the layer's own tokens) or
    ``[B, K, S, D]`` (``"bksd"``, a ``KVCache`` buffer, read as it lies)."""
    b, t, h, d = q_bthd.shape
    k_heads = k.shape[kv_layout.index("k")]
    q = q_bthd.reshape(b, t, k_heads, h // k_heads, d)
    scores = jnp.einsum(f"btkgd,{kv_layout}->bkgts", q, k, preferred_element_type=jnp.float32)
    scores = select(mask_bts[:, None, None, :, :], scaled(scores, scale, softcap), MASK_VALUE)
    probs = jax.nn.softmax(scores, axis=-1).astype(v.dtype)
    out = jnp.einsum(f"bkgts,{kv_layout}->btkgd", probs, v)
    return out.reshape(b, t, h, d)


class Attention(nnx.Module):
    """HF-named projections: ``q_proj [embed, heads, head_dim]``, ``k_proj``/``v_proj``
    ``[embed, kv_heads, head_dim]``, ``o_proj [heads, head_dim, embed]``."""

    def __init__(self, spec: TransformerSpec, rngs: nnx.Rngs):
        d, h, k, hd = spec.hidden_size, spec.num_heads, spec.num_kv_heads, spec.head_dim
        self.scale = spec.attn_scale
        self.softcap = spec.attn_logit_softcap
        self.causal_chunk = spec.attn_causal_chunk
        # Under a named layer remat (which recomputes attention anyway) its causal blocks
        # run as tiles that recompute their scores in their own backward
        # (``attention_blocks``); JAX's own policies (the demo's) keep their FLOPs.
        self.remat_blocks = spec.remat not in JAX_REMAT_POLICIES
        self.q_proj = Dense(
            (d,),
            (h, hd),
            ("embed",),
            ("heads", "head_dim"),
            spec,
            rngs,
            spec.qkv_bias,
            remat_name="query_proj",
        )
        self.k_proj = Dense(
            (d,),
            (k, hd),
            ("embed",),
            ("kv_heads", "head_dim"),
            spec,
            rngs,
            spec.qkv_bias,
            remat_name="key_proj",
        )
        self.v_proj = Dense(
            (d,),
            (k, hd),
            ("embed",),
            ("kv_heads", "head_dim"),
            spec,
            rngs,
            spec.qkv_bias,
            remat_name="value_proj",
        )
        self.o_proj = Dense(
            (h, hd),
            (d,),
            ("heads", "head_dim"),
            ("embed",),
            spec,
            rngs,
            spec.o_bias,
            remat_name="out_proj",
        )

    def __call__(
        self,
        x_btd: jax.Array,
        cos: jax.Array,
        sin: jax.Array,
        mask_bts: jax.Array | SegmentMask,
        cache_kv: tuple[jax.Array, jax.Array] | None = None,
        cache_index: jax.Array | None = None,
    ) -> tuple[jax.Array, tuple[jax.Array, jax.Array] | None]:
        """x: [B, T, D]; cos/sin: [B, T, head_dim]; mask: bool[B, T, S] (the XLA path), or
        a ``SegmentMask`` for a fused kernel (no cache: S = T).

        Without a cache S = T. With ``cache_kv`` (this layer's ``KVCache`` buffers k, v:
        [B, K, S, head_dim]) the new keys/values are written at ``cache_index`` first and
        the queries attend over all S slots. Returns ([B, T, D], updated (k, v) or None).
        """
        q = apply_rope(self.q_proj(x_btd), cos, sin)
        k = apply_rope(self.k_proj(x_btd), cos, sin)
        v = self.v_proj(x_btd)
        if cache_kv is not None:
            if isinstance(mask_bts, SegmentMask):
                raise ValueError("Attention: fused kernels take no KV cache (use the mask)")
            k_cache = write_layer(cache_kv[0], k, cache_index)
            v_cache = write_layer(cache_kv[1], v, cache_index)
            k, v = k_cache.astype(q.dtype), v_cache.astype(q.dtype)
            out = _attention(q, k, v, mask_bts, self.scale, self.softcap, kv_layout="bksd")
            return self.o_proj(out), (k_cache, v_cache)
        if isinstance(mask_bts, SegmentMask):
            out = fused_attention(q, k, v, mask_bts, self.scale, self.softcap)
            return self.o_proj(out), None
        # Without a cache, keys are the queries' own tokens in order: the mask is causal.
        out = dot_product_attention(
            q, k, v, mask_bts, self.scale, self.softcap, self.causal_chunk, self.remat_blocks
        )
        return self.o_proj(out), None
