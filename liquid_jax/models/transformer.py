"""The decoder-only transformer: embedding, scanned decoder layers, final norm, LM head.

Parameter paths follow HF module names (``embed_tokens``, ``layers.self_attn.q_proj``,
``layers.mlp.gate_proj``, ``norm``, ``lm_head``); the per-layer parameters are stacked on
a leading ``layers`` axis and run with ``nnx.scan``, so compile time does not grow with
depth. Per-layer differences (Gemma2's alternating sliding window) are scanned inputs:
the window itself for the XLA path's mask, its index among the spec's distinct windows for
a fused kernel, which needs it static (``attention_kernels``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import chex
import jax
import jax.numpy as jnp
from flax import nnx

from liquid_jax.models.attention import Attention, segment_causal_mask, window_mask
from liquid_jax.models.attention_kernels import SegmentMask, choose_attention, layer_windows
from liquid_jax.models.cached_layers import run_cached_layers
from liquid_jax.models.kv_cache import KVCache
from liquid_jax.models.layer_remat import recompute_in_backward
from liquid_jax.models.layers import MLP, Dense, Embed, RMSNorm, head_dot, select, zero_beyond
from liquid_jax.models.rope import inverse_frequencies, rope_tables
from liquid_jax.models.spec import TransformerSpec
from liquid_jax.parallel import constrain

# Finite so that arithmetic on logits (CFG mixing, temperature) stays finite.
PAD_LOGIT = -1e9
ACTIVATION_AXES = ("batch", "length", "embed")

_QKV = ("query_proj", "key_proj", "value_proj")
# The projection outputs (``Dense(remat_name=...)``) each named policy keeps for the
# backward, stacked over the layers; it recomputes everything else. MaxText's names.
REMAT_SAVED_NAMES = {
    "full": (),
    "minimal": (*_QKV, "out_proj", "mlpwi_0", "mlpwi_1", "mlpwo"),
    "save_dot_except_mlpwi": (*_QKV, "out_proj", "mlpwo"),
    "save_dot_except_mlp": (*_QKV, "out_proj"),
    "save_qkv_proj": _QKV,
    "save_out_proj": ("out_proj",),
}
_save_names = jax.checkpoint_policies.save_only_these_names
_REMAT_POLICIES = {
    # Save nothing, recompute the layer: jax.checkpoint's default, which the scan runs
    # as ``layer_remat.recompute_in_backward`` (its input kept as 16-bit words).
    "full": None,
    **{name: _save_names(*saved) for name, saved in REMAT_SAVED_NAMES.items() if saved},
    # The projections' matmuls run inside a custom VJP (``layers.project``), which JAX's
    # dot policies do not look into: they keep the projections' outputs by name.
    **{
        name: jax.checkpoint_policies.save_from_both_policies(
            getattr(jax.checkpoint_policies, name), _save_names(*REMAT_SAVED_NAMES["minimal"])
        )
        for name in ("dots_saveable", "dots_with_no_batch_dims_saveable")
    },
    "everything_saveable": jax.checkpoint_policies.everything_saveable,
}


class DecoderLayer(nnx.Module):
    """Pre-norm block. Gemma2 adds norms after attention and around the MLP."""

    def __init__(self, spec: TransformerSpec, rngs: nnx.Rngs):
        self.sandwich = spec.sandwich_norms
        self.self_attn = Attention(spec, rngs)
        self.mlp = MLP(spec, rngs)
        self.input_layernorm = RMSNorm(spec, rngs)
        # Llama/Qwen/Gemma: the pre-MLP norm. Gemma2: the norm of the attention output.
        self.post_attention_layernorm = RMSNorm(spec, rngs)
        if spec.sandwich_norms:
            self.pre_feedforward_layernorm = RMSNorm(spec, rngs)
            self.post_feedforward_layernorm = RMSNorm(spec, rngs)

    def __call__(self, x_btd, cos, sin, mask_bts, cache_kv=None, cache_index=None):
        h, new_kv = self.self_attn(
            self.input_layernorm(x_btd), cos, sin, mask_bts, cache_kv, cache_index
        )
        if self.sandwich:
            x_btd = x_btd + self.post_attention_layernorm(h)
            h = self.mlp(self.pre_feedforward_layernorm(x_btd))
            x_btd = x_btd + self.post_feedforward_layernorm(h)
        else:
            x_btd = x_btd + h
            x_btd = x_btd + self.mlp(self.post_attention_layernorm(x_btd))
        return x_btd, new_kv


def _run_layer(layer, x_btd, layer_inputs, impl: str, windows):
    """One scanned layer of the training forward: x [B, T, D] -> [B, T, D].
    layer_inputs: ((cos, sin, positions, segment_ids, base mask or None), this layer's
    window, its index among ``windows``)."""
    (cos, sin, positions, segment_ids, base_mask), window, window_id = layer_inputs
    if impl == "xla":
        mask = base_mask & window_mask(positions, positions, window)
    else:
        mask = SegmentMask(segment_ids, window_id, windows, impl)
    x_btd, _ = layer(x_btd, cos, sin, mask)
    return constrain(x_btd, ACTIVATION_AXES)


def _run_layer_state(graphdef, run, params, x_btd, layer_inputs):
    """``run`` on the layer rebuilt from its state (``recompute_in_backward`` takes
    arrays, not modules)."""
    return run(nnx.merge(graphdef, params), x_btd, layer_inputs)


def _stacked_layers(spec: TransformerSpec, rngs: nnx.Rngs) -> DecoderLayer:
    """``num_layers`` independently initialised layers as one module with a leading axis."""

    @nnx.split_rngs(splits=spec.num_layers)
    @nnx.vmap(in_axes=0, out_axes=0, transform_metadata={nnx.PARTITION_NAME: "layers"})
    def make(layer_rngs):
        return DecoderLayer(spec, layer_rngs)

    return make(rngs)


class Transformer(nnx.Module):
    """Gemma / Gemma2 / Qwen2 / Llama-3 decoder, configured by a ``TransformerSpec``."""

    def __init__(self, spec: TransformerSpec, rngs: nnx.Rngs | None = None):
        rngs = rngs if rngs is not None else nnx.Rngs(0)
        self.spec = spec
        self.embed_tokens = Embed(spec, rngs)
        self.layers = _stacked_layers(spec, rngs)
        self.norm = RMSNorm(spec, rngs)
        self.lm_head = (
            None
            if spec.tie_embeddings
            else Dense(
                (spec.hidden_size,),
                (spec.padded_vocab_size,),
                ("embed",),
                ("vocab",),
                spec,
                rngs,
                kernel_init=zero_beyond(nnx.initializers.normal(spec.init_std), spec.vocab_size, 1),
            )
        )

    def init_cache(self, batch: int, max_len: int, dtype=None) -> KVCache:
        """An empty cache of ``max_len`` slots per row (prompt + generated tokens)."""
        s = self.spec
        return KVCache.create(
            s.num_layers, batch, max_len, s.num_kv_heads, s.head_dim, dtype or s.dtype
        )

    def __call__(
        self,
        tokens: jax.Array,
        positions: jax.Array | None = None,
        segment_ids: jax.Array | None = None,
        cache: KVCache | None = None,
        logit_indices: jax.Array | None = None,
    ):
        """Next-token logits.

        Args:
          tokens: int32[B, T].
          positions: int32[B, T] RoPE positions, reset per segment in packed rows.
            Defaults to ``0..T-1`` (plus ``cache.index`` with a cache).
          segment_ids: int32[B, T]; tokens attend causally within their own segment only;
            0 marks padding. Defaults to all ones.
          cache: a ``KVCache`` (``init_cache``): prefill with many tokens, decode with one.
          logit_indices: int32[B, K]: compute logits only at these sequence indices (e.g.
            each row's last prompt token), which saves the [B, T, V] logits of a long
            prefill. The result is then float32[B, K, padded_vocab].

        Returns:
          logits float32[B, T, padded_vocab] with the padding columns at ``PAD_LOGIT``;
          ``(logits, new_cache)`` when a cache is passed.
        """
        spec = self.spec
        _check_inputs(tokens, positions, segment_ids, cache, logit_indices)
        b, t = tokens.shape
        x, cache = self._decode(tokens, positions, segment_ids, cache)
        if logit_indices is not None:
            x = jnp.take_along_axis(x, logit_indices.astype(jnp.int32)[..., None], axis=1)
        logits = self.head(self.norm(x))
        k = t if logit_indices is None else logit_indices.shape[1]
        msg = "Transformer: logits"
        chex.assert_shape(logits, (b, k, spec.padded_vocab_size), custom_message=msg)
        chex.assert_type(logits, jnp.float32, custom_message=msg)
        return logits if cache is None else (logits, cache)

    def hidden_states(
        self,
        tokens: jax.Array,
        positions: jax.Array | None = None,
        segment_ids: jax.Array | None = None,
    ) -> jax.Array:
        """The final normed hidden states, ``dtype[B, T, hidden]``: ``__call__`` without a
        cache, short of the head. ``head`` turns any slice of them into the same logits,
        so a loss can take the vocabulary a chunk of positions at a time."""
        _check_inputs(tokens, positions, segment_ids, None, None)
        x, _ = self._decode(tokens, positions, segment_ids, None)
        return self.norm(x)

    def _decode(self, tokens, positions, segment_ids, cache):
        """Embedding and the decoder layers -> (hidden states before the final norm
        [B, T, D], the advanced cache or None).

        Without a cache the stacked layers run under ``nnx.scan`` (training, scoring).
        With one the same layers run one after another, each on its own cache buffers
        (``cached_layers``), taken out of the stack here; a sampler holds them apart
        once instead (``decode_model.DecodeModel``).
        """
        spec = self.spec
        b, t = tokens.shape
        offset = cache.index if cache is not None else 0
        if positions is None:
            positions = jnp.broadcast_to(offset + jnp.arange(t, dtype=jnp.int32), (b, t))
        if segment_ids is None:
            segment_ids = jnp.ones((b, t), jnp.int32)
        positions = positions.astype(jnp.int32)
        segment_ids = segment_ids.astype(jnp.int32)

        x = constrain(self.embed_tokens(tokens), ACTIVATION_AXES)
        inv_freq = inverse_frequencies(spec.head_dim, spec.rope_theta, spec.rope_scaling)
        cos, sin = rope_tables(positions, inv_freq, spec.dtype)
        if cache is not None:
            graphdef, states = self._layer_states()
            layers = [nnx.merge(graphdef, state) for state in states]
            return run_cached_layers(
                layers, spec.window_sizes, x, cos, sin, positions, segment_ids, cache
            )
        q_slots = jnp.arange(t, dtype=jnp.int32)

        impl = choose_attention(spec, cached=False, seq_len=t)
        windows, window_ids = layer_windows(spec)
        base_mask = None
        if impl == "xla":
            base_mask = segment_causal_mask(segment_ids, segment_ids, q_slots, q_slots)
        inputs = (cos, sin, positions, segment_ids, base_mask)
        run = functools.partial(_run_layer, impl=impl, windows=windows)

        def body(x, layer, window, window_id):
            if spec.remat != "full":
                return run(layer, x, (inputs, window, window_id))
            graphdef, params = nnx.split(layer)
            layer_fn = functools.partial(_run_layer_state, graphdef, run)
            return recompute_in_backward(layer_fn, params, x, (inputs, window, window_id))

        if spec.remat not in ("none", "full"):
            body = nnx.remat(body, policy=_REMAT_POLICIES[spec.remat], prevent_cse=False,
                             graph=False)  # fmt: skip
        scan = nnx.scan(
            body,
            in_axes=(nnx.Carry, 0, 0, 0),
            out_axes=nnx.Carry,
            transform_metadata={nnx.PARTITION_NAME: "layers"},
            graph=False,
        )
        window_ids = jnp.asarray(window_ids, jnp.int32)
        x = scan(x, self.layers, jnp.asarray(spec.window_sizes, jnp.int32), window_ids)
        return x, None

    def _layer_states(self):
        """``(graphdef of one layer, [state of layer i])`` from the stacked layers."""
        graphdef, state = nnx.split(self.layers)
        count = self.spec.num_layers
        return graphdef, tuple(jax.tree.map(lambda x, i=i: x[i], state) for i in range(count))

    def head_weight(self, lo: int = 0, hi: int | None = None, cast: bool = True) -> jax.Array:
        """The head's matrix for token ids ``[lo, hi)``: dtype[D, hi - lo] (tied: the
        embedding rows, transposed); ``cast=False``: in the parameters' dtype."""
        hi = self.spec.padded_vocab_size if hi is None else hi
        if self.lm_head is None:
            w = self.embed_tokens.embedding[...][lo:hi].T
        else:
            w = self.lm_head.kernel[...][:, lo:hi]
        # A weight-only quantized head stays int8 (its scales: ``head_scale``).
        return w if w.dtype == jnp.int8 or not cast else w.astype(self.spec.dtype)

    def head_scale(self, lo: int = 0, hi: int | None = None) -> jax.Array | None:
        """float[hi - lo]: the per-column scales of a weight-only quantized head (None
        when the head is not quantized)."""
        tied = self.lm_head is None
        scale = self.embed_tokens.embedding_scale if tied else self.lm_head.kernel_scale
        return None if scale is None else scale[...][lo:hi]

    def vocab_parallel_head(self) -> Callable[[jax.Array], jax.Array]:
        """``head`` for a loss that takes it a chunk of positions at a time
        (``train.loss.chunked_loss_sums``), with the vocabulary split over the devices
        instead of the batch: normed hidden states dtype[B, C, D] -> float32[B, C, V].

        The weight is moved once from its parameter layout (``embed`` split over fsdp) to
        one split along the vocabulary over every weight-sharding axis (logical axis
        ``loss_vocab``, ``parallel/rules.py``), and stays float32 there: each chunk casts
        its own shard, so the gradient is summed over the chunks in float32, in shards.
        Each device gathers the chunk's few hidden states of its ``data`` replica
        (``loss_batch``) and computes their logits for its columns only; the loss takes
        logsumexp, target logit and argmax as reductions over the split vocabulary. No
        device ever holds the whole head or its whole gradient (at Gemma-7B's 264192 x
        3072 that was 3 GiB of float32 each). Without a mesh this is ``head``.
        """
        w = constrain(self.head_weight(cast=False), (None, "loss_vocab"))
        scale = self.head_scale()

        def head(x_bcd: jax.Array) -> jax.Array:
            x_bcd = constrain(x_bcd, ("loss_batch", "length", None))
            axes = ("loss_batch", "length", "loss_vocab")
            return self.head(x_bcd, weight=w, scale=scale, logit_axes=axes)

        return head

    def head(
        self,
        x_btd: jax.Array,
        weight: jax.Array | None = None,
        lo: int = 0,
        scale: jax.Array | None = None,
        logit_axes: tuple[str, ...] = ("batch", "length", "vocab"),
    ) -> jax.Array:
        """The LM head on normed hidden states ``[B, T, D]`` (all positions or any chunk):
        tied embedding or ``lm_head``, the final soft-cap, padding columns at
        ``PAD_LOGIT`` -> float32[B, T, padded_vocab], laid out by ``logit_axes``.

        ``weight`` (``head_weight(lo, hi)``; a float one in any dtype, cast to the compute
        dtype here) restricts it to the token ids ``[lo, hi)`` -> float32[B, T, hi - lo];
        an int8 ``weight`` comes with its ``scale`` (``head_scale(lo, hi)``)."""
        spec = self.spec
        if weight is None and self.lm_head is None:
            logits = self.embed_tokens.attend(x_btd)
        else:
            w, scale = (
                (self.head_weight(), self.head_scale()) if weight is None else (weight, scale)
            )
            if scale is None:
                w = w.astype(spec.dtype)
            logits = head_dot(x_btd.reshape(-1, x_btd.shape[-1]), w, scale, spec.dtype)
            logits = logits.reshape(*x_btd.shape[:-1], w.shape[-1])
        if spec.final_logit_softcap is not None:
            cap = spec.final_logit_softcap
            logits = jnp.tanh(logits / cap) * cap
        # Padding columns of the table must never win a softmax, argmax or sample. A
        # minimum with a [V] row (not a select with a [B, T, V] mask): nothing of the
        # size of the logits that depends only on constants, which XLA would compute once
        # outside the loss's chunk loop. Exact: real logits are below inf, others above.
        real = lo + jnp.arange(logits.shape[-1]) < spec.vocab_size
        logits = jnp.minimum(logits, select(real, jnp.float32(jnp.inf), PAD_LOGIT))
        return constrain(logits, logit_axes)


def _check_inputs(tokens, positions, segment_ids, cache, logit_indices) -> None:
    """Shape and dtype checks at the boundary (chex, at trace time: free under jit)."""
    msg = "Transformer: tokens must be int[B, T] (int32)"
    chex.assert_rank(tokens, 2, custom_message=msg)
    chex.assert_type(tokens, int, custom_message=msg)
    for name, x in (("positions", positions), ("segment_ids", segment_ids)):
        if x is not None:
            msg = f"Transformer: {name} must be int[B, T] like tokens"
            chex.assert_type(x, int, custom_message=msg)
            chex.assert_equal_shape([tokens, x], custom_message=msg)
    if logit_indices is not None:
        msg = "Transformer: logit_indices must be int[B, K]"
        chex.assert_rank(logit_indices, 2, custom_message=msg)
        chex.assert_type(logit_indices, int, custom_message=msg)
        chex.assert_equal_shape_prefix([tokens, logit_indices], 1, custom_message=msg)
    if cache is not None:
        msg = "Transformer: the cache must have one row per token row"
        chex.assert_axis_dimension(cache.segment_ids, 0, tokens.shape[0], custom_message=msg)


def count_params(model: Transformer, include_padding: bool = False) -> int:
    """Number of parameters (works on ``nnx.eval_shape`` models, nothing allocated).

    Vocabulary padding rows (embedding and untied LM head) are left out unless asked for,
    so the figure compares with published counts.
    """
    leaves = jax.tree.leaves(nnx.state(model, nnx.Param))
    total = sum(int(x.size) for x in leaves)
    if not include_padding:
        spec = model.spec
        padding = (spec.padded_vocab_size - spec.vocab_size) * spec.hidden_size
        total -= padding * (1 if spec.tie_embeddings else 2)
    return total
