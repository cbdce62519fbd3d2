"""Sweep files: ``get_sweep()`` returns a list of points, each a dict of config overrides.

    from launch.sweep_spec import named, product, sweep, zip_

    def get_sweep():
        return product(
            sweep("config.optim.lr", [1e-3, 3e-3]),
            [named("text", {"config.data.image_text_sources": ()}),
             named("mixed", {})],
        )

Keys are config paths, with or without the ``config.`` prefix. ``product`` crosses axes,
``zip_`` pairs them up point by point, ``named`` gives a point (or a group of keys) a name.
A run's name joins the names of its parts; keys without a name appear as ``key=value``
(last part of the key) when they vary across the sweep. The run's workdir is
``WORKDIR/<name>``.
"""

from __future__ import annotations

import dataclasses
import inspect
import itertools
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from launch.common import load_python_file

PARTS = "_parts"  # reserved key: the point's name parts, in axis order


def _key(k: str) -> str:
    return k[len("config.") :] if k.startswith("config.") else k


def _point(overrides: Mapping[str, Any], name: str | None = None) -> dict:
    values = {_key(k): v for k, v in overrides.items() if k != PARTS}
    part = ("name", name) if name is not None else ("keys", tuple(values))
    return {**values, PARTS: (*overrides.get(PARTS, ()), part)}


def named(name: str, overrides: Mapping[str, Any] | None = None, **kw) -> dict:
    """One point called ``name`` (``overrides`` may be empty: the base config as it is)."""
    return _point({**(overrides or {}), **kw}, name)


def sweep(key: str, values: Iterable[Any], names: Iterable[str] | None = None) -> list[dict]:
    """One axis: ``key`` takes each of ``values`` (named ``names`` if given)."""
    values = list(values)
    names = list(names) if names is not None else [None] * len(values)
    if len(names) != len(values):
        raise ValueError(f"sweep({key!r}): {len(values)} values but {len(names)} names")
    return [_point({key: v}, n) for v, n in zip(values, names)]


def _axis(axis) -> list[dict]:
    if isinstance(axis, Mapping):
        axis = [axis]
    return [p if PARTS in p else _point(p) for p in axis]


def _merge(points: Iterable[dict]) -> dict:
    out: dict = {PARTS: ()}
    for p in points:
        for k, v in p.items():
            if k == PARTS:
                out[PARTS] = (*out[PARTS], *v)
            elif k in out and out[k] != v:
                raise ValueError(f"sweep: key {k!r} set twice in one point ({out[k]!r}, {v!r})")
            else:
                out[k] = v
    return out


def product(*axes) -> list[dict]:
    """Every combination of one point from each axis (a list of points or one dict)."""
    return [_merge(combo) for combo in itertools.product(*map(_axis, axes))]


def zip_(*axes) -> list[dict]:
    """Point i of every axis together; the axes must have the same length."""
    axes = [_axis(a) for a in axes]
    if len({len(a) for a in axes}) > 1:
        raise ValueError(f"zip_: axes of different lengths {[len(a) for a in axes]}")
    return [_merge(combo) for combo in zip(*axes)]


# --- expansion into runs


@dataclasses.dataclass(frozen=True)
class Run:
    """One point of a sweep: its name (also its workdir's) and its overrides."""

    name: str
    overrides: dict[str, Any]


def _short(value) -> str:
    text = repr(value) if not isinstance(value, str) else value
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", text).strip("_") or "empty"


def expand(points) -> list[Run]:
    """Points -> runs with unique names; raises on duplicate names or an empty sweep."""
    points = _axis(points)
    if not points:
        raise ValueError("the sweep has no points")
    keys = {k for p in points for k in p if k != PARTS}
    varying = {k for k in keys if len({repr(p.get(k, "<unset>")) for p in points}) > 1}
    runs = []
    for i, p in enumerate(points):
        parts = []
        for kind, what in p.get(PARTS, ()):
            if kind == "name":
                parts.append(what)
            else:
                parts += [f"{k.split('.')[-1]}={_short(p[k])}" for k in what if k in varying]
        name = "-".join(x for x in parts if x) or f"run{i}"
        if not re.fullmatch(r"[A-Za-z0-9._=+,-]+", name):
            raise ValueError(f"sweep: run name {name!r} has characters unsafe in a path")
        runs.append(Run(name, {k: v for k, v in p.items() if k != PARTS}))
    counts = {}
    for r in runs:
        counts[r.name] = counts.get(r.name, 0) + 1
    dupes = sorted(n for n, c in counts.items() if c > 1)
    if dupes:
        raise ValueError(f"sweep: several points share the names {dupes}; name them")
    return runs


def varying_keys(runs: list[Run]) -> list[str]:
    """The keys whose value differs between runs, in first-seen order."""
    seen = list(dict.fromkeys(k for r in runs for k in r.overrides))
    return [k for k in seen if len({repr(r.overrides.get(k)) for r in runs}) > 1]


def load_sweep(spec: str):
    """``path[:arg]`` -> (module, runs); ``get_sweep(arg)`` when the file takes an arg."""
    path, _, arg = spec.partition(":")
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"sweep file {path!r} not found")
    module = load_python_file(
        file, f"liquid_sweep_{file.stem}", f"sweep file {path!r}", "get_sweep"
    )
    takes_arg = bool(inspect.signature(module.get_sweep).parameters)
    if arg and not takes_arg:
        raise ValueError(f"sweep file {path!r}: get_sweep() takes no arg, got {arg!r}")
    points = module.get_sweep(arg) if takes_arg else module.get_sweep()
    return module, expand(points)
