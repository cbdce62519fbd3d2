"""Weight-only int8 for decoding: half the bytes a bf16 step reads, half the memory.

``quantize_weights(model, "int8")`` returns a copy of a ``Transformer`` whose matmul
weights are int8 with one float scale per output channel (symmetric, absmax / 127): every
layer's attention ``q/k/v/o`` and MLP ``gate/up/down`` kernels and the head's table (the
``lm_head`` kernel, or the tied embedding, which then serves the lookup too, one scale
per row). Norms, biases and an untied input embedding stay as they are. The model's own
``Dense`` / ``Embed`` run the int8 tables (``models/layers.quantized_dot``): the int8
values are the matmul's operand and the float32 product is scaled per channel, so no
dequantized copy of a weight is ever made. Activations, the KV cache and the logits
keep the compute dtype.

Scales are rounded to bfloat16 before the weights are divided by them, so that
``Transformer.decode_weights`` (which casts floating parameters to the compute dtype
once before the loop) leaves them exact.

An own implementation rather than qwix's ``PtqProvider``: qwix quantizes a weight when
it meets the module's own parameter at a ``dot_general``, but the decode loop takes the
stacked layers apart and casts them once outside the loop (``decode_weights``) and runs
them over per-layer states, and ``Dense`` casts its kernel before the matmul: the arrays
reaching the matmul are not the parameters qwix knows.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from flax import nnx

from liquid_jax.errors import ConfigError
from liquid_jax.models.transformer import Transformer

MODES = ("int8",)
INT8_MAX = 127


@functools.partial(jax.jit, static_argnums=(1,))
def quantize_int8(w: jax.Array, contract_axes: tuple[int, ...]) -> tuple[jax.Array, jax.Array]:
    """w: float[...] -> (int8 values, float32 scale over the axes not in
    ``contract_axes``) with ``w ~= values * scale`` (scale broadcast back)."""
    w32 = w.astype(jnp.float32)
    absmax = jnp.max(jnp.abs(w32), axis=contract_axes, keepdims=True)
    scale = (absmax / INT8_MAX).astype(jnp.bfloat16).astype(jnp.float32)
    scale = jnp.where(scale > 0, scale, 1.0)  # an all-zero channel (vocabulary padding)
    values = jnp.clip(jnp.round(w32 / scale), -INT8_MAX, INT8_MAX).astype(jnp.int8)
    return values, jnp.squeeze(scale, contract_axes)


def _names(variable: nnx.Variable) -> tuple[str, tuple | None]:
    """(the metadata key holding the logical axis names, the names)."""
    meta = variable.get_metadata()
    for key in ("out_sharding", "sharding_names", "sharding"):
        if meta.get(key):
            return key, tuple(meta[key])
    return "sharding_names", None


def _quantized(variable: nnx.Variable, contract_axes: tuple[int, ...]):
    """(the int8 variable, its scale as an ``nnx.Param`` with the kept axes' names)."""
    values, scale = quantize_int8(variable[...], contract_axes)
    key, names = _names(variable)
    meta = {}
    if names is not None:
        meta[key] = tuple(n for i, n in enumerate(names) if i not in contract_axes)
    return variable.replace(values), nnx.Param(scale, **meta)


def _tables(model: Transformer) -> list[tuple[nnx.Module, str, tuple[int, ...]]]:
    """``(module, attribute, contracted axes)`` of every table to quantize: each
    ``Dense`` kernel (contracted over its ``num_in`` input axes, after the stacked layers'
    leading axis) and, when the head is tied, the embedding (over its embed axis)."""
    found = []
    for path, node in nnx.iter_graph(model):
        if not isinstance(node, nnx.Module):
            continue
        if hasattr(node, "kernel") and hasattr(node, "num_in"):
            lead = 1 if path and path[0] == "layers" else 0
            found.append((node, "kernel", tuple(range(lead, lead + node.num_in))))
        elif hasattr(node, "embedding") and model.spec.tie_embeddings:
            found.append((node, "embedding", (1,)))
    return found


def quantize_weights(model: Transformer, mode: str = "int8") -> Transformer:
    """A copy of ``model`` with its matmul weights quantized (``mode``: one of ``MODES``);
    the weights it leaves alone are shared with ``model``, which is not changed."""
    if mode not in MODES:
        raise ConfigError(f"sample: quantize={mode!r}; use one of {MODES}")
    graphdef, state = nnx.split(model)
    copy = nnx.merge(graphdef, state)  # its own variables over the same arrays
    tables = _tables(copy)
    if any(getattr(module, name + "_scale") is not None for module, name, _ in tables):
        raise ConfigError("sample: the model's weights are already quantized")
    for module, name, axes in tables:
        values, scale = _quantized(getattr(module, name), axes)
        setattr(module, name, values)
        setattr(module, name + "_scale", scale)
    return copy


def weight_bytes(state) -> int:
    """Bytes of every array in an (abstract or concrete) model state."""
    return sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(state))
