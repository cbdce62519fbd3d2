"""Reading a run's Orbax checkpoints without a manager: which steps are complete, one
subtree of a step's state (the model without the optimizer's moments), and the walk back
from a torn newest step to the newest one that reads.

``train.checkpoint.Checkpointer`` writes them (``checkpoints/<step>/{state,data,meta}``).
Saves are atomic, but a file can still be damaged afterwards (a disk filling up, a copy
cut short, a hand edit): ``restore_newest`` then logs a warning naming the step, the
error and the damaged file where one can be found, and tries the next older step.
"""

from __future__ import annotations

import gc
import json
import logging as std_logging
import re
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import orbax.checkpoint as ocp
from absl import logging
from etils import epath

from liquid_jax import fileio
from liquid_jax.errors import PathNotFoundError, UserError
from liquid_jax.runs.layout import checkpoints_dir

T = TypeVar("T")
_JSON_LIMIT = 1 << 20  # only small files can be Orbax's JSON metadata
_MESSAGE_LIMIT = 300  # tensorstore's errors carry the whole spec


class NoIntactCheckpointError(UserError, RuntimeError):
    """Checkpoints exist but none of them can be read; the message lists each failure."""


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
        raise PathNotFoundError(f"no complete checkpoint in {checkpoints_dir(workdir)}")
    return done[-1]


def state_path(workdir: str, step: int) -> str:
    """Where step ``step``'s state pytree is stored."""
    return fileio.join(checkpoints_dir(workdir), str(step), "state")


def _files(folder: epath.Path, depth: int = 6) -> list[epath.Path]:
    """The files under ``folder`` (epath's ``rglob`` refuses ``gs://``)."""
    out = []
    for p in folder.iterdir():
        if p.is_dir():
            out += _files(p, depth - 1) if depth > 0 else []
        else:
            out.append(p)
    return out


def damaged_files(step_dir: str) -> list[str]:
    """Files of a checkpoint step that are plainly damaged: empty, or JSON that does not
    parse (Orbax's metadata, the data iterator's state, ``meta``). Best effort: array
    data cut short is found by the reader, whose error names it."""
    found = []
    try:
        files = _files(epath.Path(step_dir))
    except Exception:  # a listing that fails names nothing more than the error itself
        return found
    for path in sorted(files):
        try:
            size = path.stat().length
            if size == 0:
                found.append(f"{path} (empty)")
                continue
            if size > _JSON_LIMIT:
                continue
            data = path.read_bytes()
            if data.lstrip()[:1] in (b"{", b"["):
                json.loads(data)
        except ValueError as e:
            found.append(f"{path} ({type(e).__name__}: {e})")
        except Exception:  # unreadable here too: the reader's error says why
            found.append(str(path))
    return found


def describe_failure(step_dir: str, error: BaseException) -> str:
    """One line: the error's type and (shortened) message, then the damaged files: those
    the error names (tensorstore's ``local file "..."``) and those ``damaged_files``
    finds."""
    text = f"{type(error).__name__}: {error}".replace("\n", " ")
    named = [f for f in re.findall(r'file "([^"]+)"', text) if not f.endswith("/")]
    if len(text) > _MESSAGE_LIMIT:
        text = text[:_MESSAGE_LIMIT] + "..."
    broken = list(dict.fromkeys(named[-1:] + damaged_files(step_dir)))
    return text + (f"; damaged: {', '.join(broken)}" if broken else "")


def _collect_quietly() -> None:
    """A failed Orbax read leaves futures whose errors nobody retrieved; asyncio logs each
    one (with tensorstore's whole spec) when it is collected. Collect them now, unlogged:
    the warning above has said what failed."""
    asyncio_logger = std_logging.getLogger("asyncio")
    level = asyncio_logger.level
    asyncio_logger.setLevel(std_logging.CRITICAL)
    try:
        gc.collect()
    finally:
        asyncio_logger.setLevel(level)


def restore_newest(directory: str, steps: Sequence[int], read: Callable[[int], T]) -> tuple[int, T]:
    """``(step, read(step))`` for the newest of ``steps`` that ``read`` can read.

    A step that fails is logged (a warning naming the step, the error and the damaged
    file where known) and the next older one is tried; a ``UserError`` from ``read``
    (the checkpoint does not fit the config) is raised as it is. When every step fails,
    ``NoIntactCheckpointError`` lists them all; with no steps, ``PathNotFoundError``.
    """
    steps = sorted(steps, reverse=True)
    if not steps:
        raise PathNotFoundError(f"no complete checkpoint in {directory}")
    failures = []
    for i, step in enumerate(steps):
        try:
            return step, read(step)
        except UserError:
            raise
        except Exception as e:  # any failure to read a step: a damaged file
            why = describe_failure(fileio.join(directory, str(step)), e)
            failures.append(f"step {step}: {why}")
            then = f"trying step {steps[i + 1]}" if i + 1 < len(steps) else "no older step"
            logging.warning(
                "checkpoint: step %d in %s cannot be read (%s); %s", step, directory, why, then
            )
        _collect_quietly()
    raise NoIntactCheckpointError(
        f"no checkpoint in {directory} can be read ({len(failures)} tried): " + " | ".join(failures)
    )


def read_subtree(workdir: str, key: str, abstract: Any, step: int):
    """``state[key]`` of checkpoint ``step`` as stored, or the reader's error (no walk
    back; ``restore_subtree`` adds it)."""
    target = {key: abstract}
    args = ocp.args.PyTreeRestore(
        item=target,
        restore_args=ocp.checkpoint_utils.construct_restore_args(target),
        partial_restore=True,
    )
    path = epath.Path(state_path(workdir, step))
    return ocp.PyTreeCheckpointer().restore(path, args=args)[key]


def restore_subtree(workdir: str, key: str, abstract: Any, step: int | None = None):
    """Reads only ``state[key]`` of a checkpoint: ``(step, tree)``. ``abstract`` gives the
    subtree's structure, dtypes and (optional) shardings as ``jax.ShapeDtypeStruct``s;
    ``step`` defaults to the newest one that reads (``restore_newest``)."""
    steps = complete_steps(workdir) if step is None else [step]
    return restore_newest(
        checkpoints_dir(workdir), steps, lambda s: read_subtree(workdir, key, abstract, s)
    )
