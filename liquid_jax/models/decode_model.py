"""The decode form of a ``Transformer``: the one copy of its weights a sampler holds.

``DecodeModel.from_transformer(model, splits)`` takes a ``Transformer`` apart once, at
load: each decoder layer becomes its own ``DecoderLayer`` (its slice of the stack), the
embedding (the head too when tied) is split into vocabulary blocks at ``splits`` (e.g.
text | image codes), an untied head into the same column blocks, and every floating
parameter is cast to the compute dtype. ``prefill`` and ``decode_step`` both run from
these arrays as they lie, through the model's own layers (``cached_layers``): no program
slices, stacks or casts a weight, so a generation holds the weights once.

Why blocks: a T2I step needs only the head's image-code columns, a text step only the
text columns; a block per range is read in place, where a range of one table is a slice
(a copy, per generation or per step). A range that cuts a block is still served, by a
slice in the step. Rows past ``vocab_size`` (padding) are dropped: no token is looked up
or drawn there.

Why the layers are not scanned: a scan needs the layers' weights stacked on one axis,
while a decode step reads them one layer at a time (a scan over a stack would slice each
weight in each step and copy the per-layer KV cache through the loop). So the one copy
is per layer and the prefill runs the same unrolled layers; a scanned prefill would
stack a second copy of the weights inside its program. The sampling programs' compile
time grows with depth (training's does not: it scans).

``from_transformer`` goes one piece (a layer, a block) at a time and hands each piece to
``place`` and ``quantize`` hooks before the next is cut, so a sampler can put each piece
on its devices, and quantize it there, while the stacked model stays on the host.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from liquid_jax.models.cached_layers import ACTIVATION_AXES, run_cached_layers
from liquid_jax.models.kv_cache import KVCache
from liquid_jax.models.layers import quantized_dot
from liquid_jax.models.rope import inverse_frequencies, rope_tables
from liquid_jax.models.spec import TransformerSpec
from liquid_jax.models.transformer import Transformer, _check_inputs
from liquid_jax.parallel import constrain

Hook = Callable[[nnx.Module], None]
_is_variable = lambda x: isinstance(x, nnx.Variable)  # noqa: E731


def vocab_edges(splits: Sequence[int], vocab_size: int) -> tuple[int, ...]:
    """``(0, *splits inside (0, vocab_size) in order, vocab_size)``: the blocks' edges."""
    inner = sorted({int(s) for s in splits if 0 < int(s) < vocab_size})
    return (0, *inner, int(vocab_size))


def _names(variable: nnx.Variable) -> tuple[str | None, tuple | None]:
    """(the metadata key holding the logical axis names, the names)."""
    meta = variable.get_metadata()
    for key in ("out_sharding", "sharding_names", "sharding"):
        if meta.get(key):
            return key, tuple(meta[key])
    return None, None


def _piece(module: nnx.Module, take: Callable[[nnx.Variable], nnx.Variable]) -> nnx.Module:
    """A new module of ``module``'s structure holding ``take(variable)`` of each variable."""
    graphdef, state = nnx.split(module)
    return nnx.merge(graphdef, jax.tree.map(take, state, is_leaf=_is_variable))


def _layer(variable: nnx.Variable, i: int) -> nnx.Variable:
    """Layer ``i`` of a stacked variable, its ``layers`` axis name dropped."""
    key, names = _names(variable)
    meta = {key: names[1:]} if names and names[0] == "layers" else {}
    return variable.replace(variable.get_value()[i], **meta)


def _vocab_slice(variable: nnx.Variable, lo: int, hi: int) -> nnx.Variable:
    """Rows (or columns) ``[lo, hi)`` of a table along its ``vocab`` axis."""
    _, names = _names(variable)
    axis = names.index("vocab") if names and "vocab" in names else 0
    return variable.replace(jax.lax.slice_in_dim(variable.get_value(), lo, hi, axis=axis))


def _cast(module: nnx.Module, dtype) -> None:
    """Casts ``module``'s floating parameters to ``dtype`` in place."""

    def one(v):
        x = v.get_value()
        floating = jnp.issubdtype(x.dtype, jnp.floating) and x.dtype != dtype
        return v.replace(x.astype(dtype)) if floating else v

    nnx.update(module, jax.tree.map(one, nnx.state(module), is_leaf=_is_variable))


class DecodeModel(nnx.Module):
    """A ``Transformer``'s weights as decoding reads them (see the module docstring).

    Attributes:
      layers: one ``DecoderLayer`` per layer (compute dtype, or int8 with scales).
      embed: ``Embed`` blocks: tied, one per block of ``edges`` (rows ``[lo, hi)``, the
        head's columns too); untied, one holding rows ``[0, vocab_size)``.
      head: untied, one ``Dense`` per block of ``edges`` (columns ``[lo, hi)``); None when
        the head is the embedding.
      norm: the final ``RMSNorm``.
      edges: ``(0, ..., vocab_size)``, the vocabulary blocks' edges.
    """

    def __init__(self, spec: TransformerSpec, layers, embed, norm, head, edges):
        self.spec = spec
        self.edges = tuple(int(e) for e in edges)
        self.layers = nnx.List(layers)
        self.embed = nnx.List(embed)
        self.norm = norm
        self.head = None if head is None else nnx.List(head)

    @classmethod
    def from_transformer(
        cls,
        model: Transformer,
        splits: Sequence[int] = (),
        *,
        place: Hook | None = None,
        quantize: Hook | None = None,
    ) -> DecodeModel:
        """``model`` taken apart, one piece at a time.

        Args:
          model: a ``Transformer`` (float, or already weight-only quantized).
          splits: token ids where a vocabulary block starts (e.g. the image offset);
            a decode over ``[lo, hi)`` reads its blocks in place when ``lo`` and ``hi``
            are edges.
          place: called on each piece as it is cut (e.g. put it on a mesh), and again
            once it is quantized and cast.
          quantize: called on each piece holding matmul tables (a layer, a head block,
            a tied embedding block) to quantize them in place, before the cast.
        """
        spec = model.spec
        edges = vocab_edges(splits, spec.vocab_size)
        blocks = list(zip(edges[:-1], edges[1:]))
        tied = model.lm_head is None

        def finish(piece: nnx.Module, tables: bool) -> nnx.Module:
            if place is not None:
                place(piece)
            if quantize is not None and tables:
                quantize(piece)
            _cast(piece, spec.dtype)
            if place is not None:
                place(piece)
            return piece

        layers = []
        for i in range(spec.num_layers):
            layers.append(finish(_piece(model.layers, lambda v, i=i: _layer(v, i)), True))
        embed = [
            finish(_piece(model.embed_tokens, lambda v, a=a, b=b: _vocab_slice(v, a, b)), tied)
            for a, b in (blocks if tied else [(0, spec.vocab_size)])
        ]
        head = None
        if not tied:
            head = [
                finish(_piece(model.lm_head, lambda v, a=a, b=b: _vocab_slice(v, a, b)), True)
                for a, b in blocks
            ]
        # New variables over the same arrays: placing them must not move the model's.
        norm = finish(_piece(model.norm, lambda v: v.replace(v.get_value())), False)
        return cls(spec, layers, embed, norm, head, edges)

    def init_cache(self, batch: int, max_len: int, dtype=None) -> KVCache:
        """An empty cache of ``max_len`` slots per row (prompt + generated tokens)."""
        s = self.spec
        return KVCache.create(
            s.num_layers, batch, max_len, s.num_kv_heads, s.head_dim, dtype or s.dtype
        )

    def columns(self, columns: tuple[int, int] | None) -> tuple[int, int]:
        lo, hi = columns if columns is not None else (0, self.spec.vocab_size)
        if not 0 <= lo < hi <= self.spec.vocab_size:
            raise ValueError(
                f"DecodeModel: columns {columns} outside the vocabulary [0, {self.spec.vocab_size})"
            )
        return int(lo), int(hi)

    def _embed(self, tokens: jax.Array) -> jax.Array:
        """tokens: int32[B, T] -> dtype[B, T, D], each from the block holding its row."""
        edges = self.edges if self.head is None else (0, self.spec.vocab_size)
        x = None
        for (lo, hi), block in zip(zip(edges[:-1], edges[1:]), self.embed):
            rows = block(jnp.clip(tokens - lo, 0, hi - lo - 1))
            inside = ((tokens >= lo) & (tokens < hi))[..., None]
            x = rows if x is None else jnp.where(inside, rows, x)
        return x

    def _hidden(self, tokens, positions, segment_ids, cache):
        """The layers over the cache -> (normed hidden states [B, T, D], new cache)."""
        spec = self.spec
        x = constrain(self._embed(tokens), ACTIVATION_AXES)
        inv_freq = inverse_frequencies(spec.head_dim, spec.rope_theta, spec.rope_scaling)
        cos, sin = rope_tables(positions, inv_freq, spec.dtype)
        layers = list(self.layers)
        return run_cached_layers(
            layers, spec.window_sizes, x, cos, sin, positions, segment_ids, cache
        )

    def _tables(self):
        """``(lo, hi, table, scale or None, vocab axis)`` of each head block."""
        pairs = list(zip(self.edges[:-1], self.edges[1:]))
        if self.head is None:
            return [
                (lo, hi, e.embedding[...], None if e.embedding_scale is None else
                 e.embedding_scale[...], 0)
                for (lo, hi), e in zip(pairs, self.embed)
            ]  # fmt: skip
        return [
            (lo, hi, d.kernel[...], None if d.kernel_scale is None else d.kernel_scale[...], 1)
            for (lo, hi), d in zip(pairs, self.head)
        ]

    def logits(self, x_btd: jax.Array, columns: tuple[int, int] | None = None) -> jax.Array:
        """The head on normed hidden states [B, T, D] for token ids ``columns = (lo, hi)``
        (default: the whole vocabulary), with the final soft-cap -> float32[B, T, hi - lo].
        Blocks inside the range are read as they lie (contracted on the embed axis, no
        transpose); one the range cuts is sliced."""
        spec = self.spec
        lo, hi = self.columns(columns)
        x = x_btd.reshape(-1, x_btd.shape[-1]).astype(spec.dtype)
        parts = []
        for a, b, table, scale, axis in self._tables():
            s, e = max(lo, a), min(hi, b)
            if s >= e:
                continue
            if (s, e) != (a, b):
                table = jax.lax.slice_in_dim(table, s - a, e - a, axis=axis)
                scale = None if scale is None else scale[s - a : e - a]
            dims = (((1,), (1 - axis,)), ((), ()))
            if scale is None:
                part = jax.lax.dot_general(
                    x.astype(table.dtype), table, dims, preferred_element_type=jnp.float32
                )
            else:
                part = quantized_dot(x, table, scale, dims, jnp.float32)
            parts.append(part)
        logits = parts[0] if len(parts) == 1 else jnp.concatenate(parts, axis=-1)
        logits = logits.reshape(*x_btd.shape[:-1], hi - lo)
        if spec.final_logit_softcap is not None:
            cap = spec.final_logit_softcap
            logits = jnp.tanh(logits / cap) * cap
        return constrain(logits, ("batch", "length", "vocab"))

    def prefill(
        self,
        tokens: jax.Array,
        positions: jax.Array | None = None,
        segment_ids: jax.Array | None = None,
        *,
        cache: KVCache,
        logit_indices: jax.Array | None = None,
        columns: tuple[int, int] | None = None,
    ) -> tuple[jax.Array, KVCache]:
        """Feeds T tokens per row into the cache (at ``cache.index``).

        Args:
          tokens: int32[B, T]; positions, segment_ids: int32[B, T] (default: ``index +
            0..T-1`` and all ones; 0 marks padding, as in ``Transformer.__call__``).
          logit_indices: int32[B, K]: logits only at these sequence indices.
          columns: ``(lo, hi)``: logits of these token ids only (default: all).

        Returns:
          (logits float32[B, T or K, hi - lo], the advanced cache).
        """
        _check_inputs(tokens, positions, segment_ids, cache, logit_indices)
        b, t = tokens.shape
        if positions is None:
            positions = jnp.broadcast_to(cache.index + jnp.arange(t, dtype=jnp.int32), (b, t))
        if segment_ids is None:
            segment_ids = jnp.ones((b, t), jnp.int32)
        positions, segment_ids = positions.astype(jnp.int32), segment_ids.astype(jnp.int32)
        x, cache = self._hidden(tokens, positions, segment_ids, cache)
        if logit_indices is not None:
            x = jnp.take_along_axis(x, logit_indices.astype(jnp.int32)[..., None], axis=1)
        return self.logits(self.norm(x), columns), cache

    def decode_step(
        self,
        tokens: jax.Array,
        positions: jax.Array,
        cache: KVCache,
        columns: tuple[int, int] | None = None,
    ) -> tuple[jax.Array, KVCache]:
        """One token per row (segment 1), written at ``cache.index``.

        Args:
          tokens, positions: int32[B].
          columns: ``(lo, hi)``: logits of these token ids only (default: all).

        Returns:
          (logits float32[B, hi - lo], as ``Transformer.__call__``'s columns ``lo:hi``;
          the advanced cache).
        """
        _check_inputs(tokens[:, None], positions[:, None], None, cache, None)
        segment_ids = jnp.ones_like(tokens, jnp.int32)[:, None]
        positions = positions.astype(jnp.int32)[:, None]
        x, cache = self._hidden(tokens[:, None], positions, segment_ids, cache)
        return self.logits(self.norm(x), columns)[:, 0], cache


def greedy_generate(model: Transformer, prompt_tokens: jax.Array, num_new_tokens: int):
    """Prefill the prompt, then ``num_new_tokens`` argmax steps of ``decode_step`` in a
    ``lax.fori_loop`` over the model's ``DecodeModel`` (the full sampler lives in
    ``sample/``).

    Args:
      model: a ``Transformer``.
      prompt_tokens: int32[B, P], no padding (every row P real tokens).
      num_new_tokens: how many tokens to append.

    Returns:
      int32[B, num_new_tokens]: the generated tokens (no stopping at EOS).
    """
    graphdef, state = nnx.split(DecodeModel.from_transformer(model))
    return _greedy(graphdef, state, jnp.asarray(prompt_tokens, jnp.int32), int(num_new_tokens))


@functools.partial(jax.jit, static_argnums=(0, 3))
def _greedy(graphdef, state, prompt, num_new):
    model = nnx.merge(graphdef, state)
    b, p = prompt.shape
    last = jnp.full((b, 1), p - 1, jnp.int32)
    logits, cache = model.prefill(
        prompt, cache=model.init_cache(b, p + num_new), logit_indices=last
    )
    first = jnp.argmax(logits[:, 0], axis=-1).astype(jnp.int32)
    out = jnp.zeros((b, num_new), jnp.int32).at[:, 0].set(first)

    def step(i, carry):
        out, cache = carry
        # Rebuilt inside the loop's trace: NNX refuses modules from an outer trace.
        model = nnx.merge(graphdef, state)
        token = jax.lax.dynamic_index_in_dim(out, i - 1, axis=1, keepdims=False)
        logits, cache = model.decode_step(token, jnp.full((b,), p + i - 1, jnp.int32), cache)
        nxt = jnp.argmax(logits, axis=-1).astype(jnp.int32)
        return jax.lax.dynamic_update_slice_in_dim(out, nxt[:, None], i, axis=1), cache

    out, _ = jax.lax.fori_loop(1, num_new, step, (out, cache))
    return out
