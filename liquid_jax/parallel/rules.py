"""Logical axis names -> mesh axes.

Parameters and activations name their axes logically (``batch, length, embed, vocab,
heads, kv_heads, head_dim, mlp, layers``); a rule table maps each to mesh axes. A logical
axis whose mesh axes are absent from the current mesh, or already used earlier in the
same spec, is left unsharded.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator, Sequence

import jax
from jax.sharding import PartitionSpec as P

Rules = tuple[tuple[str, str | tuple[str, ...] | None], ...]

# FSDP shards weights over `fsdp` along `embed`; tensor parallelism splits heads, the MLP
# and the vocabulary; the batch spans both data-parallel axes. The loss's LM head splits
# the vocabulary over every weight-sharding axis instead (`loss_vocab`), each device
# scoring its columns for the whole `data` replica's batch (`loss_batch`): its weight is
# then never gathered and its gradient never all-reduced (`Transformer.vocab_parallel_head`).
DEFAULT_RULES: Rules = (
    ("batch", ("data", "fsdp")),
    ("loss_batch", "data"),
    ("loss_vocab", ("fsdp", "tensor")),
    ("length", None),
    ("embed", "fsdp"),
    ("vocab", "tensor"),
    ("heads", "tensor"),
    ("kv_heads", "tensor"),
    ("head_dim", None),
    ("mlp", "tensor"),
    ("layers", None),
    ("cache_length", None),
    ("conv_in", None),
    ("conv_out", None),
    ("codebook", None),
)

_RULES: contextvars.ContextVar[Rules] = contextvars.ContextVar(
    "liquid_rules", default=DEFAULT_RULES
)


def current_rules() -> Rules:
    return _RULES.get()


@contextlib.contextmanager
def axis_rules(rules: Sequence[Sequence]) -> Iterator[None]:
    """Uses ``rules`` (pairs of logical name, mesh axes) for everything inside the block."""
    token = _RULES.set(
        tuple((str(k), v if v is None or isinstance(v, str) else tuple(v)) for k, v in rules)
    )
    try:
        yield
    finally:
        _RULES.reset(token)


def logical_to_mesh(
    names: Sequence[str | None] | None,
    mesh_axes: Sequence[str] | None = None,
    rules: Rules | None = None,
) -> P:
    """Maps a tuple of logical axis names to a ``PartitionSpec`` of mesh axes.

    Args:
      names: one logical name (or None) per array dimension.
      mesh_axes: the axes of the target mesh; rules naming other axes are ignored.
      rules: defaults to the rules in force (``axis_rules``).
    """
    if names is None:
        return P()
    table = dict(rules if rules is not None else current_rules())
    used: set[str] = set()
    out = []
    for name in names:
        target = table.get(name) if name is not None else None
        if name is not None and name not in table:
            raise KeyError(f"logical axis {name!r} has no rule; known: {sorted(table)}")
        axes = (target,) if isinstance(target, str) else tuple(target or ())
        axes = tuple(a for a in axes if (mesh_axes is None or a in mesh_axes) and a not in used)
        used.update(axes)
        out.append(None if not axes else axes[0] if len(axes) == 1 else axes)
    return P(*out)


def constrain(x: jax.Array, names: Sequence[str | None]) -> jax.Array:
    """``with_sharding_constraint`` by logical names; a no-op outside a mesh context."""
    mesh = jax.sharding.get_abstract_mesh()
    if mesh.empty:
        return x
    return jax.lax.with_sharding_constraint(x, logical_to_mesh(names, mesh.axis_names))
