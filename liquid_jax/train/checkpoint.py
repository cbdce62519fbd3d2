"""Orbax checkpoints of a training run: arrays, the data iterator position and the step.

Layout: ``WORKDIR/checkpoints/<step>/{state, data, meta}``. Saves are asynchronous and
atomic (Orbax writes into a temporary directory and renames it when complete), so a save
interrupted by a crash or preemption never becomes the latest checkpoint. A step damaged
afterwards (a file cut short) is skipped with a warning: ``restore`` walks back to the
newest step that reads (``runs.checkpoints.restore_newest``), and a later save of the
damaged step replaces it.
"""

from __future__ import annotations

import json
from typing import Any

import grain
import jax
import orbax.checkpoint as ocp
from absl import logging

from liquid_jax.runs.checkpoints import restore_newest
from liquid_jax.runs.layout import checkpoints_dir


def _quiet_orbax(record) -> bool:
    """Orbax logs every phase of every save at INFO; keep its warnings and errors only."""
    return record.levelno >= 30 or "orbax" not in record.pathname


logging.get_absl_logger().addFilter(_quiet_orbax)


class _HostState:
    """One process's data-iterator state in the shape Grain's Orbax handler expects: it
    writes ``process_<i>-of-<n>.json`` per process, so every host resumes its own shard."""

    def __init__(self, state: dict | None = None):
        self.state = state

    def get_state(self) -> bytes:
        return json.dumps(self.state or {}).encode()

    def set_state(self, raw: bytes) -> None:
        self.state = json.loads(raw.decode())

    def start_prefetch(self) -> None:
        pass


class Checkpointer:
    """Keeps the last ``keep`` checkpoints of one run and restores the newest complete one.

    Args:
      workdir: the run directory (a local path or a URL such as ``gs://bucket/run``);
        checkpoints go to ``workdir/checkpoints``.
      keep: how many checkpoints to keep (older ones are deleted).
      async_save: write in a background thread while training goes on.
    """

    def __init__(self, workdir: str, keep: int = 3, async_save: bool = True):
        self.directory = checkpoints_dir(workdir)
        options = ocp.CheckpointManagerOptions(
            max_to_keep=keep,
            create=True,
            enable_async_checkpointing=async_save,
            cleanup_tmp_directories=True,
        )
        self._manager = ocp.CheckpointManager(
            self.directory, options=options, item_names=("state", "data", "meta")
        )

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        return list(self._manager.all_steps())

    def save(
        self,
        step: int,
        state: Any,
        data_state: dict | None = None,
        meta: dict | None = None,
        force: bool = False,
    ) -> bool:
        """Starts saving ``state`` (a pytree of arrays) at ``step``; returns False if skipped.

        ``data_state`` is this process's input-pipeline state (JSON-able; each process
        stores its own); ``meta`` is any small JSON-able record stored beside it.
        """
        if step in self.all_steps():
            # Only a step that failed to restore is ever saved again (restore walked back
            # past it): the new save replaces the damaged one.
            logging.warning("checkpoint: replacing the unreadable step %d in %s", step,
                            self.directory)  # fmt: skip
            self._manager.delete(step)
        args = ocp.args.Composite(
            state=ocp.args.StandardSave(state),
            data=grain.checkpoint.CheckpointSave(_HostState(data_state)),
            meta=ocp.args.JsonSave(meta or {}),
        )
        saved = self._manager.save(step, args=args, force=force)
        if saved:
            logging.info("checkpoint: saving step %d to %s", step, self.directory)
        return saved

    def restore(self, abstract_state: Any, step: int | None = None) -> tuple[int, Any, dict, dict]:
        """Restores ``(step, state, data_state, meta)`` from ``step`` (default: the newest
        step that reads: a damaged newer one is logged and skipped).

        ``abstract_state`` is a pytree of ``jax.ShapeDtypeStruct`` (with shardings) or
        arrays giving the structure, dtypes and placement to restore into. Raises
        ``FileNotFoundError`` when there is no checkpoint and
        ``runs.checkpoints.NoIntactCheckpointError`` when none can be read.
        """
        abstract_state = jax.tree.map(ocp.utils.to_shape_dtype_struct, abstract_state)

        def read(s: int):
            return self._manager.restore(
                s,
                args=ocp.args.Composite(
                    state=ocp.args.StandardRestore(abstract_state),
                    data=grain.checkpoint.CheckpointRestore(_HostState()),
                    meta=ocp.args.JsonRestore(),
                ),
            )

        steps = self.all_steps() if step is None else [step]
        step, restored = restore_newest(self.directory, steps, read)
        logging.info("checkpoint: restored step %d from %s", step, self.directory)
        data = restored["data"].state or {}
        return step, restored["state"], dict(data), dict(restored["meta"] or {})

    def restore_raw(self, step: int | None = None) -> Any:
        """The saved state pytree as stored (host arrays), with no target structure."""
        step = self.latest_step() if step is None else step
        restored = self._manager.restore(
            step, args=ocp.args.Composite(state=ocp.args.StandardRestore())
        )
        return restored["state"]

    def wait(self) -> None:
        """Blocks until any save in flight is complete on disk."""
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()
