"""What the launchers share: config-override checks, the ``liquid-jax`` command line, and
a runner that prints every command before it runs it (or only prints it: dry run)."""

from __future__ import annotations

import ast
import copy
import dataclasses
import importlib.util
import shlex
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from liquid_jax.errors import UserError
from liquid_jax.train.validate import check_config

REPO = Path(__file__).resolve().parents[1]


class ConfigKeyError(ValueError):
    """A ``config.a.b`` override that names no key of the config."""


class CommandError(RuntimeError):
    """A launched command exited non-zero."""

    def __init__(self, cmd: Sequence[str], returncode: int):
        super().__init__(f"command failed with exit code {returncode}: {shlex.join(cmd)}")
        self.cmd, self.returncode = list(cmd), returncode


# --- configs and overrides


def load_python_file(file: Path, module_name: str, what: str, needs: str):
    """Executes ``file`` as module ``module_name``; raises unless it defines ``needs``
    (errors name it as ``what``, e.g. "config file 'configs/x.py'")."""
    module_spec = importlib.util.spec_from_file_location(module_name, file)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    if not hasattr(module, needs):
        raise ValueError(f"{what} defines no {needs}()")
    return module


def load_config(spec: str):
    """``"configs/smoke.py:steps=3"`` -> the ConfigDict that ``get_config("steps=3")`` makes."""
    path, _, arg = spec.partition(":")
    file = Path(path) if Path(path).is_absolute() else Path.cwd() / path
    if not file.is_file() and (REPO / path).is_file():
        file = REPO / path  # configs/... also resolves from outside the checkout
    if not file.is_file():
        raise FileNotFoundError(f"config file {path!r} not found (from {Path.cwd()})")
    module = load_python_file(
        file, f"liquid_launch_cfg_{file.stem}", f"config file {path!r}", "get_config"
    )
    return module.get_config(arg) if arg else module.get_config()


def strip_prefix(key: str) -> str:
    """``"config.optim.lr"`` and ``"optim.lr"`` both name ``optim.lr``."""
    return key[len("config.") :] if key.startswith("config.") else key


def check_key(config, key: str) -> None:
    """Raises ConfigKeyError naming ``key``, the part that is missing and the valid keys at
    that level (the same check as ``liquid_jax.cli.check_config_overrides``, but raising)."""
    node, walked = config, []
    for part in strip_prefix(key).split("."):
        if not hasattr(node, "keys") or part not in node:
            valid = sorted(node.keys()) if hasattr(node, "keys") else []
            where = "config." + ".".join(walked) if walked else "the top level of the config"
            raise ConfigKeyError(
                f"unknown config key {key!r}: {part!r} is not in {where}; "
                f"valid keys there: {', '.join(valid) or '(none: it is a value)'}"
            )
        node, walked = node[part], [*walked, part]


def check_overrides(config, overrides: Mapping[str, Any], check_types: bool = True) -> None:
    """Checks every override key, and (``check_types``) that the value fits the field by
    assigning it on a copy: ConfigDict rejects e.g. a string for an int field."""
    for key in overrides:
        check_key(config, key)
    if check_types:
        apply_overrides(config, overrides)


def apply_overrides(config, overrides: Mapping[str, Any]):
    """A copy of ``config`` with ``overrides`` set, as ``--config.a.b=...`` flags would
    set them (a string for a non-string field is read as a Python literal)."""
    trial = copy.deepcopy(config)
    for key, value in overrides.items():
        *parents, leaf = strip_prefix(key).split(".")
        node = trial
        for part in parents:
            node = node[part]
        if isinstance(value, str) and not isinstance(node[leaf], str):
            value = _literal(value)
        try:
            node[leaf] = value
        except (TypeError, ValueError) as e:
            raise ConfigKeyError(
                f"config key {key!r}: value {value!r} does not fit the field "
                f"(currently {node[leaf]!r}): {e}"
            ) from e
    return trial


def check_paths(
    launcher: str, config, overrides: Mapping[str, Any], workdir: str, hint: str = ""
) -> None:
    """What ``liquid-jax train`` checks before anything else (``init_from``, tokenizer and
    data sources exist, through ``liquid_jax.fileio``: local paths here, ``gs://`` in
    the bucket), run here first: a missing path stops the launch with one line."""
    try:
        check_config(apply_overrides(config, overrides), workdir)
    except UserError as e:
        raise SystemExit(f"{launcher}: {e}{hint}") from None


def _literal(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def format_value(value) -> str:
    """A Python value as ml_collections' flag parser reads it back."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        value = tuple(value)
    return repr(value)


def override_flags(overrides: Mapping[str, Any]) -> list[str]:
    """``{"optim.lr": 1e-3}`` -> ``["--config.optim.lr=0.001"]``."""
    return [f"--config.{strip_prefix(k)}={format_value(v)}" for k, v in overrides.items()]


def parse_override_args(args: Iterable[str]) -> dict[str, str]:
    """``["--config.a.b=1", "--config.c", "2"]`` -> ``{"a.b": "1", "c": "2"}``; anything
    else is an error (the launchers pass only config overrides through)."""
    args, out = list(args), {}
    i = 0
    while i < len(args):
        a = args[i]
        if not a.startswith("--config."):
            raise ValueError(f"unexpected argument {a!r}: only --config.KEY=VALUE passes through")
        key, eq, value = a[len("--config.") :].partition("=")
        if not eq:
            if i + 1 >= len(args):
                raise ValueError(f"{a} has no value")
            i, value = i + 1, args[i + 1]
        out[key] = value
        i += 1
    return out


def liquid_args(
    config: str, workdir: str, overrides: Mapping[str, Any] = (), command: str = "train"
) -> list[str]:
    """The arguments after ``liquid-jax``: ``[command, --config=F, --workdir=D, overrides]``."""
    return [command, f"--config={config}", f"--workdir={workdir}", *override_flags(overrides)]


# --- running commands


@dataclasses.dataclass
class Runner:
    """Prints each command (``+ cmd``, shell-quoted) before running it; ``dry_run`` only
    prints. Notes (``# ...``) say what a step does that is not a command."""

    dry_run: bool = False
    out: TextIO | None = None

    def _print(self, line: str) -> None:
        print(line, file=self.out or sys.stdout, flush=True)

    def note(self, message: str) -> None:
        self._print(f"# {message}")

    def run(self, cmd: Sequence[str], check: bool = True, **kwargs) -> int:
        self._print("+ " + shlex.join(cmd))
        if self.dry_run:
            return 0
        rc = subprocess.call(list(cmd), **kwargs)
        if check and rc:
            raise CommandError(cmd, rc)
        return rc

    def output(self, cmd: Sequence[str]) -> str:
        """Runs ``cmd`` and returns its stdout ("" in a dry run)."""
        self._print("+ " + shlex.join(cmd))
        if self.dry_run:
            return ""
        done = subprocess.run(list(cmd), capture_output=True, text=True)
        if done.returncode:
            raise CommandError(cmd, done.returncode)
        return done.stdout
