"""What ``liquid-jax`` checks in its arguments before absl parses them: that ``--config``
names a Python file and every ``--config.a.b=...`` a key of it (ml_collections would
fail deep inside flag parsing), the demo's default config, and whether ``--debug`` was
asked for (a user error can come before the flags are parsed)."""

from __future__ import annotations

import difflib
import importlib.util
import os
import sys

from liquid_jax.errors import ConfigError, PathNotFoundError


def _config_spec(argv: list[str]) -> str | None:
    """The ``--config`` value (``FILE[:ARG]``) in ``argv``, the last one given."""
    spec = None
    for i, a in enumerate(argv):
        if a.startswith("--config="):
            spec = a.split("=", 1)[1]
        elif a == "--config" and i + 1 < len(argv):
            spec = argv[i + 1]
    return spec


def check_config_file(argv: list[str]) -> None:
    """``--config`` names an existing Python file, or ``PathNotFoundError`` naming it (and
    the closest file name beside it): ml_collections would fail inside flag parsing."""
    spec = _config_spec(argv)
    if spec is None:
        return
    path = spec.partition(":")[0]
    if os.path.isfile(path):
        if not path.endswith(".py"):
            raise ConfigError(f"--config {path}: not a Python config file (*.py)")
        return
    folder, name = os.path.split(path)
    listing = os.listdir(folder or ".") if os.path.isdir(folder or ".") else []
    close = difflib.get_close_matches(name, [n for n in listing if n.endswith(".py")], n=1)
    hint = f" (did you mean {os.path.join(folder, close[0])}?)" if close else ""
    raise PathNotFoundError(f"--config {path}: no such file{hint}")


def _load_config_file(spec: str):
    path, _, arg = spec.partition(":")
    module_spec = importlib.util.spec_from_file_location("liquid_config_check", path)
    if module_spec is None:
        raise ConfigError(f"--config {path}: not a Python config file (*.py)")
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.get_config(arg) if arg else module.get_config()


def check_config_overrides(argv: list[str]) -> None:
    """Fails before anything runs when a ``--config.a.b=...`` names no config key, listing
    the valid keys at that level (ml_collections would only raise deep in flag parsing)."""
    spec = _config_spec(argv)
    overrides = [a[len("--config.") :].split("=", 1)[0] for a in argv if a.startswith("--config.")]
    if spec is None or not overrides:
        return
    config = _load_config_file(spec)
    for key in overrides:
        node, walked = config, []
        for part in key.split("."):
            if not hasattr(node, "keys") or part not in node:
                valid = sorted(node.keys()) if hasattr(node, "keys") else []
                where = ".".join(walked) or "the top level"
                print(
                    f"liquid-jax: unknown config key {key!r}: {part!r} is not in {where}; "
                    f"valid keys there: {', '.join(valid)}",
                    file=sys.stderr,
                )
                sys.exit(2)
            node, walked = node[part], [*walked, part]


DEMO_CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs",
                           "demo.py")  # fmt: skip


def with_default_config(command: str, argv: list[str]) -> list[str]:
    """``demo`` runs ``configs/demo.py`` unless ``--config`` names another file."""
    given = any(a == "--config" or a.startswith("--config=") for a in argv)
    return argv if command != "demo" or given else [f"--config={DEMO_CONFIG}", *argv]


def debug_requested(argv: list[str]) -> bool:
    """``LIQUID_DEBUG=1`` in the environment, or ``--debug`` in ``argv`` (the last of
    ``--debug``, ``--debug=BOOL``, ``--nodebug`` wins, as for absl). Read from ``argv``
    because a user error can come before the flags are parsed."""
    if os.environ.get("LIQUID_DEBUG", "").strip().lower() not in ("", "0", "false", "no"):
        return True
    debug = False
    for a in argv:
        if a == "--debug":
            debug = True
        elif a == "--nodebug":
            debug = False
        elif a.startswith("--debug="):
            debug = a.split("=", 1)[1].lower() in ("1", "true", "yes")
    return debug
