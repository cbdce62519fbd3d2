"""Building blocks: parameters with logical axes, projections, embedding, RMSNorm, MLP.

``Dense`` and ``Embed`` also run weight-only quantized (``sample/quantize.py`` sets
them up): an int8 table with a float scale per output channel (``kernel_scale``,
``embedding_scale``), read as it lies by the matmul and scaled after it.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx
from jax.ad_checkpoint import checkpoint_name

from liquid_jax.models.mlp_chunks import activate, block_size, gated_mlp_in_chunks
from liquid_jax.models.spec import TransformerSpec
from liquid_jax.parallel import constrain


def param(rngs: nnx.Rngs, init, shape: Sequence[int], names: Sequence[str], dtype) -> nnx.Param:
    """An ``nnx.Param`` carrying logical axis names (one per dimension)."""
    init = nnx.with_partitioning(init, tuple(names))
    return nnx.Param(init(rngs.params(), tuple(shape), dtype))


def select(condition: jax.Array, x, y) -> jax.Array:
    """``jnp.where(condition, x, y)`` (broadcasting, ``x``'s dtype) as plain ``lax`` ops.

    ``jnp.where`` is a jitted call: inside a remat'd scan body (the layers, the loss's
    chunks) JAX's partial evaluation computes the part of it that depends only on
    constants (the broadcast mask or fill value) once, outside the loop, and keeps it
    for the backward: a whole [B, H, T, S] or [B, C, V] buffer per call. Primitives
    follow the remat policy and are recomputed instead.
    """
    x = jnp.asarray(x)
    y = jnp.asarray(y, x.dtype)
    shape = jnp.broadcast_shapes(jnp.shape(condition), x.shape, y.shape)
    cast = lambda a: jnp.broadcast_to(a, shape)  # noqa: E731
    return jax.lax.select(cast(condition), cast(x), cast(y))


def zero_beyond(init, size: int, axis: int):
    """``init`` with every index >= ``size`` along ``axis`` zeroed (vocabulary padding)."""

    def wrapped(key, shape, dtype=jnp.float32):
        value = init(key, shape, dtype)
        keep = jax.lax.broadcasted_iota(jnp.int32, shape, axis) < size
        return jnp.where(keep, value, jnp.zeros((), dtype))

    return wrapped


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def project(x: jax.Array, kernel: jax.Array, n: int, names: tuple[str, ...]) -> jax.Array:
    """``x @ kernel`` in x's dtype: x [N, *in] (``n`` axes), kernel [*in, *out] with
    logical axes ``names`` (any dtype: float32 master weights) -> [N, *out].

    The kernel is cast where it lies, in its own shards, so that an FSDP gather moves
    the compute dtype (half of float32); its gradient leaves the matmul in the compute
    dtype and is summed over the devices in the kernel's dtype, into the kernel's shards.
    The same numbers as ``dot_general(x, kernel.astype(x.dtype))`` and its autodiff.
    """
    w = constrain(kernel.astype(x.dtype), names)
    return jax.lax.dot_general(x, w, ((tuple(range(1, n + 1)), tuple(range(n))), ((), ())))


def _project_fwd(x, kernel, n, names):
    return project(x, kernel, n, names), (x, kernel)


def _project_bwd(n, names, residuals, g):
    x, kernel = residuals
    w = constrain(kernel.astype(x.dtype), names)
    out_axes = tuple(range(n, kernel.ndim))
    dx = jax.lax.dot_general(g, w, ((tuple(range(1, g.ndim)), out_axes), ((), ())))
    # In the compute dtype, as autodiff of the cast would give it (XLA:CPU has no bf16
    # matmul with a float32 result), then summed over the devices in the kernel's dtype.
    dw = jax.lax.dot_general(x, g, (((0,), (0,)), ((), ())))
    return dx.astype(x.dtype), constrain(dw.astype(kernel.dtype), names)


project.defvjp(_project_fwd, _project_bwd)


def quantized_dot(x, kernel, scale, dimension_numbers, out_dtype) -> jax.Array:
    """``dot_general(x, kernel)`` for an int8 ``kernel`` with one ``scale`` per output
    channel (broadcast over the product's trailing axes): the int8 values enter the
    matmul converted to x's dtype (a convert that accelerators fuse into the matmul, so
    it reads the int8 values), the product accumulates in float32 and is scaled there
    -> out_dtype."""
    y = jax.lax.dot_general(
        x, kernel.astype(x.dtype), dimension_numbers, preferred_element_type=jnp.float32
    )
    return (y * scale.astype(jnp.float32)).astype(out_dtype)


def head_dot(x_nd: jax.Array, w_dv: jax.Array, scale_v: jax.Array | None, dtype) -> jax.Array:
    """An output head's logits, float32[N, V]: ``w`` in the compute dtype, or int8 with
    its per-column ``scale``."""
    if scale_v is None:
        return jnp.dot(x_nd.astype(w_dv.dtype), w_dv, preferred_element_type=jnp.float32)
    dims = (((1,), (0,)), ((), ()))
    return quantized_dot(x_nd.astype(dtype), w_dv, scale_v, dims, jnp.float32)


class Dense(nnx.Module):
    """Contracts the last ``len(in_shape)`` axes of x with a kernel ``[*in_shape, *out_shape]``.

    Keeping heads as separate kernel axes (``q_proj``: ``[embed, heads, head_dim]``) lets
    the tensor axis shard heads without reshapes. A weight-only quantized Dense holds an
    int8 kernel and ``kernel_scale: float[*out_shape]``.
    """

    kernel_scale: nnx.Param | None = None  # set on quantized copies only

    def __init__(
        self,
        in_shape: Sequence[int],
        out_shape: Sequence[int],
        in_names: Sequence[str],
        out_names: Sequence[str],
        spec: TransformerSpec,
        rngs: nnx.Rngs,
        use_bias: bool = False,
        kernel_init=None,
        remat_name: str | None = None,
    ):
        self.num_in = len(in_shape)
        self.kernel_names = (*in_names, *out_names)
        # The output's name for the remat policies that save it (``transformer.py``).
        self.remat_name = remat_name
        self.dtype = spec.dtype
        init = kernel_init or nnx.initializers.normal(spec.init_std)
        self.kernel = param(
            rngs, init, (*in_shape, *out_shape), (*in_names, *out_names), spec.param_dtype
        )
        self.bias = (
            param(rngs, nnx.initializers.zeros, out_shape, out_names, spec.param_dtype)
            if use_bias
            else None
        )

    def __call__(self, x: jax.Array) -> jax.Array:
        kernel = self.kernel[...]
        n = self.num_in
        lead = x.shape[: x.ndim - n]
        # All tokens on one axis: XLA:CPU lowers a batched [B, T, D] contraction to
        # strided transposes in the backward pass (about 2x slower). The kernel is
        # contracted as it lies (no reshape of the weights in the program: a decode step
        # reads each weight once).
        x = x.astype(self.dtype).reshape(-1, *kernel.shape[:n])
        if self.kernel_scale is None:
            y = project(x, kernel, n, self.kernel_names)
        else:
            contract = (tuple(range(1, n + 1)), tuple(range(n)))
            scale = self.kernel_scale[...]
            y = quantized_dot(x, kernel, scale, (contract, ((), ())), self.dtype)
        y = y.reshape(*lead, *kernel.shape[n:])
        if self.bias is not None:
            y = y + self.bias[...].astype(self.dtype)
        if self.remat_name is not None:
            y = checkpoint_name(y, self.remat_name)
        return y


class Embed(nnx.Module):
    """Token embedding ``embedding: [padded_vocab, embed]``, optionally scaled (Gemma).
    Weight-only quantized: an int8 table and ``embedding_scale: float[padded_vocab]``, one
    per row (so per column of the tied head)."""

    embedding_scale: nnx.Param | None = None  # set on quantized copies only

    def __init__(self, spec: TransformerSpec, rngs: nnx.Rngs):
        self.spec = spec
        # Padding rows start (and, never receiving gradient, stay) at zero.
        init = zero_beyond(nnx.initializers.normal(spec.init_std), spec.vocab_size, 0)
        self.embedding = param(
            rngs,
            init,
            (spec.padded_vocab_size, spec.hidden_size),
            ("vocab", "embed"),
            spec.param_dtype,
        )

    def __call__(self, tokens: jax.Array) -> jax.Array:
        """tokens: int32[B, T] -> dtype[B, T, D]."""
        x = jnp.take(self.embedding[...], tokens, axis=0)
        if self.embedding_scale is not None:
            rows = jnp.take(self.embedding_scale[...], tokens, axis=0)
            x = x.astype(jnp.float32) * rows.astype(jnp.float32)[..., None]
        x = x.astype(self.spec.dtype)
        if self.spec.scale_embeddings:
            # HF rounds sqrt(hidden) to the compute dtype first (55.4 -> 55.5 in bf16).
            x = x * jnp.asarray(self.spec.hidden_size**0.5, dtype=self.spec.dtype)
        return x

    def attend(self, x: jax.Array) -> jax.Array:
        """Tied output head: x dtype[B, T, D] -> float32[B, T, padded_vocab]."""
        x2 = x.reshape(-1, x.shape[-1])
        if self.embedding_scale is not None:
            w = self.embedding[...]
            dims = (((1,), (1,)), ((), ()))
            logits = quantized_dot(x2, w, self.embedding_scale[...], dims, jnp.float32)
            return logits.reshape(*x.shape[:-1], w.shape[0])
        w = self.embedding[...].astype(self.spec.dtype)
        logits = jnp.dot(x2, w.T, preferred_element_type=jnp.float32)
        return logits.reshape(*x.shape[:-1], w.shape[0])


class RMSNorm(nnx.Module):
    """RMSNorm with ``scale: [embed]``; Gemma multiplies by ``1 + scale``.

    Numerics follow HF: normalise in float32; Gemma applies the scale in float32 then
    casts, Llama/Qwen cast first then apply the scale.
    """

    def __init__(self, spec: TransformerSpec, rngs: nnx.Rngs):
        self.eps = spec.rms_norm_eps
        self.plus_one = spec.norm_plus_one
        init = nnx.initializers.zeros if spec.norm_plus_one else nnx.initializers.ones
        self.scale = param(rngs, init, (spec.hidden_size,), ("embed",), spec.param_dtype)

    def __call__(self, x: jax.Array) -> jax.Array:
        x32 = x.astype(jnp.float32)
        normed = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + self.eps)
        if self.plus_one:
            return (normed * (1.0 + self.scale[...].astype(jnp.float32))).astype(x.dtype)
        return self.scale[...].astype(x.dtype) * normed.astype(x.dtype)


class MLP(nnx.Module):
    """Gated MLP: ``down(act(gate(x)) * up(x))`` (GeGLU for Gemma, SwiGLU otherwise).

    With ``spec.mlp_chunk`` a call over more than one position runs the intermediate
    features in blocks (``mlp_chunks``); its output keeps the remat name ``mlpwo``."""

    def __init__(self, spec: TransformerSpec, rngs: nnx.Rngs):
        d, f = spec.hidden_size, spec.intermediate_size
        self.activation = spec.activation
        self.chunk = block_size(f, spec.mlp_chunk)
        self.gate_proj = Dense((d,), (f,), ("embed",), ("mlp",), spec, rngs, remat_name="mlpwi_0")
        self.up_proj = Dense((d,), (f,), ("embed",), ("mlp",), spec, rngs, remat_name="mlpwi_1")
        self.down_proj = Dense((f,), (d,), ("mlp",), ("embed",), spec, rngs, remat_name="mlpwo")

    def __call__(self, x: jax.Array) -> jax.Array:
        """x: [..., T, D] -> dtype[..., T, D]."""
        quantized = self.gate_proj.kernel_scale is not None
        if self.chunk and x.shape[-2] > 1 and not quantized:
            dtype = self.down_proj.dtype
            y = gated_mlp_in_chunks(
                x.astype(dtype).reshape(-1, x.shape[-1]),
                self.gate_proj.kernel[...],
                self.up_proj.kernel[...],
                self.down_proj.kernel[...],
                self.activation,
                self.chunk,
            )
            return checkpoint_name(y.reshape(x.shape), self.down_proj.remat_name)
        gate = activate(self.gate_proj(x), self.activation)
        return self.down_proj(gate * self.up_proj(x))
