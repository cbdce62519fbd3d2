"""Placing NNX state on a mesh: shardings from logical axis metadata, sharded creation."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import jax
from flax import nnx
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from liquid_jax.parallel.rules import Rules, logical_to_mesh

M = TypeVar("M", bound=nnx.Module)


def _names_of(variable) -> tuple | None:
    meta = variable.get_metadata() if hasattr(variable, "get_metadata") else {}
    names = meta.get("out_sharding") or meta.get("sharding_names") or meta.get("sharding")
    return tuple(names) if names else None


def fit_spec(spec: P, shape: tuple[int, ...], mesh: Mesh) -> P:
    """Drops mesh axes that do not divide their dimension (e.g. one KV head under MQA
    with tensor parallelism): that dimension is replicated over them instead."""
    out = []
    for dim, axes in zip(shape, tuple(spec) + (None,) * (len(shape) - len(spec))):
        axes = (axes,) if isinstance(axes, str) else tuple(axes or ())
        kept, size = [], 1
        for a in axes:
            if dim % (size * mesh.shape[a]) == 0:
                kept.append(a)
                size *= mesh.shape[a]
        out.append(None if not kept else kept[0] if len(kept) == 1 else tuple(kept))
    fitted = P(*out[: len(spec)])
    return spec if fitted == spec else fitted


def state_shardings(state: nnx.State, mesh: Mesh, rules: Rules | None = None):
    """A pytree of ``NamedSharding`` matching ``state`` (abstract or concrete).

    Each variable's logical axis names (``out_sharding`` metadata) are mapped through
    ``rules``; variables without names are replicated.
    """

    def one(variable):
        names = _names_of(variable)
        value = variable.get_value() if hasattr(variable, "get_value") else variable
        if not hasattr(value, "shape"):  # e.g. optax's MaskedNode: an empty subtree
            return variable
        ndim = len(getattr(value, "shape", ()))
        if names is not None and len(names) != ndim:
            raise ValueError(f"logical axes {names} do not match a value of shape {value.shape}")
        spec = fit_spec(logical_to_mesh(names, mesh.axis_names, rules), value.shape, mesh)
        return variable.replace(NamedSharding(mesh, spec))

    return jax.tree.map(one, state, is_leaf=lambda x: isinstance(x, nnx.Variable))


def create_sharded(factory: Callable[[], M], mesh: Mesh, rules: Rules | None = None) -> M:
    """Creates ``factory()`` with every variable already sharded on ``mesh``.

    Shapes come from ``nnx.eval_shape`` (nothing allocated), shardings from the logical
    axis metadata, and a jitted init materialises each shard on its own device, so a model
    larger than one device's memory can be created.
    """
    abstract = nnx.eval_shape(factory)
    graphdef, abstract_state = nnx.split(abstract)
    shardings = state_shardings(abstract_state, mesh, rules)

    with jax.set_mesh(mesh):
        state = jax.jit(lambda: nnx.state(factory()), out_shardings=shardings)()
    return nnx.merge(graphdef, state)
