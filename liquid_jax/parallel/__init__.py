"""How arrays are laid out: meshes, logical axis rules, multi-host start, global batches."""

from liquid_jax.parallel.distributed import (
    any_process,
    barrier,
    forget_vote,
    initialize_distributed,
)
from liquid_jax.parallel.host_batch import host_local_to_global
from liquid_jax.parallel.mesh import MeshConfig, make_mesh
from liquid_jax.parallel.rules import (
    DEFAULT_RULES,
    axis_rules,
    constrain,
    current_rules,
    logical_to_mesh,
)
from liquid_jax.parallel.sharding import create_sharded, state_shardings

__all__ = [
    "DEFAULT_RULES",
    "MeshConfig",
    "any_process",
    "axis_rules",
    "barrier",
    "constrain",
    "create_sharded",
    "current_rules",
    "forget_vote",
    "host_local_to_global",
    "initialize_distributed",
    "logical_to_mesh",
    "make_mesh",
    "state_shardings",
]
