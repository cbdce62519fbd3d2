"""Host-local numpy batches -> global sharded ``jax.Array``s."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding

from liquid_jax.parallel.rules import logical_to_mesh


def batch_sharding(mesh: Mesh, ndim: int, names: Sequence[str | None] | None = None):
    """Sharding of a batch array: leading axis over the batch mesh axes, rest replicated."""
    names = tuple(names) if names is not None else ("batch",) + (None,) * (ndim - 1)
    return NamedSharding(mesh, logical_to_mesh(names, mesh.axis_names))


def host_local_to_global(batch, mesh: Mesh):
    """Assembles each host's slice of the batch into one global array per leaf.

    Every process passes the rows it loaded (``leaf.shape[0]`` = global batch / process
    count); the result has the global batch as its leading dimension, sharded over the
    batch axes of ``mesh``.
    """

    def one(x):
        x = np.asarray(x)
        sharding = batch_sharding(mesh, x.ndim)
        global_shape = (x.shape[0] * jax.process_count(), *x.shape[1:])
        if jax.process_count() == 1:
            return jax.device_put(x, sharding)
        return jax.make_array_from_process_local_data(sharding, x, global_shape)

    return jax.tree.map(one, batch)
