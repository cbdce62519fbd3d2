"""What counts as a user's mistake, in one place.

An exception whose class derives from ``UserError`` is something the person running a
command can fix from its message alone: a bad flag or config value, a path that does not
exist, input that cannot be used (a model directory, an image, a prompt), too many bad
records, a run whose checkpoints are all unreadable. ``liquid-jax`` prints such an error
as one line, ``liquid-jax <command>: error: <message>``, and exits 1; every other
exception is a bug and keeps its traceback (``--debug`` or ``LIQUID_DEBUG=1`` shows the
traceback of a user error too).

The classes below also derive from the built-in type a caller would catch
(``ValueError``, ``FileNotFoundError``, ``RuntimeError``), so ``except ValueError`` goes
on working. Errors defined elsewhere join by deriving from one of them
(``data.images.ImageError``, ``data.skips.TooManySkipsError``, ``runs.load.NoModelError``,
``runs.checkpoints.NoIntactCheckpointError``, ``train.loop.NonFiniteError``).
"""

from __future__ import annotations


class UserError(Exception):
    """A mistake the user can fix from the message; the CLI prints it without a traceback."""


class ConfigError(UserError, ValueError):
    """A setting that cannot work: a config key, a flag, a ``--config`` file or its arg."""


class InputError(UserError, ValueError):
    """Input that cannot be used: a model directory or tensor, a prompt, a file's content."""


class PathNotFoundError(UserError, FileNotFoundError):
    """A path the user named (or that a run directory should hold) does not exist."""


def is_user_error(error: BaseException) -> bool:
    """Whether the CLI shows ``error`` as one line (True) or with its traceback."""
    return isinstance(error, UserError)
