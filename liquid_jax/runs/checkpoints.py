"""Reading a run's Orbax checkpoints without a manager: which steps are complete, and one
subtree of a step's state (the model without the optimizer's moments).

``train.checkpoint.Checkpointer`` writes them (``checkpoints/<step>/{state,data,meta}``).
"""

from __future__ import annotations

from typing import Any

import orbax.checkpoint as ocp
from etils import epath

from liquid_jax import fileio
from liquid_jax.runs.layout import checkpoints_dir


def complete_steps(workdir: str) -> list[int]:
    """The steps of the finalised checkpoints in a run directory, ascending: the
    directories named by their step alone (a save in progress lives under a temporary
    name)."""
    directory = checkpoints_dir(workdir)
    if not fileio.isdir(directory):
        return []
    return sorted(int(d) for d in fileio.listdir(directory) if d.isdigit())


def latest_step(workdir: str) -> int:
    """The newest complete step; ``FileNotFoundError`` naming the folder when there is none."""
    done = complete_steps(workdir)
    if not done:
        raise FileNotFoundError(f"no complete checkpoint in {checkpoints_dir(workdir)}")
    return done[-1]


def state_path(workdir: str, step: int) -> str:
    """Where step ``step``'s state pytree is stored."""
    return fileio.join(checkpoints_dir(workdir), str(step), "state")


def restore_subtree(workdir: str, key: str, abstract: Any, step: int | None = None):
    """Reads only ``state[key]`` of a checkpoint: ``(step, tree)``. ``abstract`` gives the
    subtree's structure, dtypes and (optional) shardings as ``jax.ShapeDtypeStruct``s;
    ``step`` defaults to the latest."""
    step = latest_step(workdir) if step is None else step
    target = {key: abstract}
    args = ocp.args.PyTreeRestore(
        item=target,
        restore_args=ocp.checkpoint_utils.construct_restore_args(target),
        partial_restore=True,
    )
    restored = ocp.PyTreeCheckpointer().restore(epath.Path(state_path(workdir, step)), args=args)
    return step, restored[key]
