"""File access for run directories that may be local paths or URLs (``gs://bucket/run``).

Local paths go through the builtins (``open``, ``os.path``, ``os.makedirs``) exactly as
before. URLs go through ``etils.epath``: for ``gs://`` that is TensorFlow's ``gfile`` when
TensorFlow is installed, otherwise fsspec's ``gcsfs`` (the ``tpu`` extra installs it).
Object stores cannot append to an object, so ``open`` refuses mode ``"a"`` on a URL (gcsfs
would silently overwrite instead) and ``append_text`` rewrites the object.
"""

from __future__ import annotations

import builtins
import contextlib
import glob as _glob
import os
import posixpath
import re
import tempfile
from collections.abc import Iterator
from typing import IO

from liquid_jax.errors import ConfigError

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
# What etils.epath sends to a remote filesystem; it would read any other "x://" as a
# relative local path, so those are refused rather than written under ./x:/.
URL_SCHEMES = ("gs", "s3", "az", "hf")


def is_url(path: str | os.PathLike) -> bool:
    """True for ``scheme://...`` (``gs://bucket/run``), False for a local path."""
    return _SCHEME.match(os.fspath(path)) is not None


def _epath(path: str | os.PathLike):
    # etils.epath (and gcsfs behind it) only for URLs; local paths never need it.
    from etils import epath

    path = os.fspath(path)
    scheme = _SCHEME.match(path).group(1)
    if scheme not in URL_SCHEMES:
        supported = ", ".join(f"{s}://" for s in URL_SCHEMES)
        raise ConfigError(f"{path}: unsupported URL scheme {scheme}:// (supported: {supported})")
    return epath.Path(path)


def absolute(path: str) -> str:
    """``os.path.abspath`` for a local path; a URL is returned as it is."""
    return path if is_url(path) else os.path.abspath(path)


def join(path: str, *parts: str) -> str:
    return posixpath.join(path, *parts) if is_url(path) else os.path.join(path, *parts)


def exists(path: str) -> bool:
    return _epath(path).exists() if is_url(path) else os.path.exists(path)


def isfile(path: str) -> bool:
    return _epath(path).is_file() if is_url(path) else os.path.isfile(path)


def isdir(path: str) -> bool:
    return _epath(path).is_dir() if is_url(path) else os.path.isdir(path)


def listdir(path: str) -> list[str]:
    """The names (not paths) of the entries of directory ``path``."""
    if is_url(path):
        return [p.name for p in _epath(path).iterdir()]
    return os.listdir(path)


def makedirs(path: str) -> None:
    """Creates ``path`` and its parents if missing (on object stores: nothing to do)."""
    if is_url(path):
        _epath(path).mkdir(parents=True, exist_ok=True)
    else:
        os.makedirs(path, exist_ok=True)


def remove(path: str) -> None:
    """Deletes the file (or the object) at ``path``."""
    if is_url(path):
        _epath(path).unlink()
    else:
        os.remove(path)


def open(path: str, mode: str = "r", encoding: str | None = None) -> IO:
    """``builtins.open`` for a local path; ``epath.Path.open`` (UTF-8) for a URL."""
    if not is_url(path):
        return builtins.open(path, mode, encoding=encoding)
    if "a" in mode:
        raise ValueError(f"{path}: objects cannot be appended to; use fileio.append_text")
    return _epath(path).open(mode)


def read_text(path: str, encoding: str | None = None) -> str:
    with open(path, encoding=encoding) as f:
        return f.read()


def write_text(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def read_bytes(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def write_bytes(path: str, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)


def append_text(path: str, text: str) -> None:
    """Appends to a local file; a URL's object is read and written back whole."""
    if not is_url(path):
        with builtins.open(path, "a") as f:
            f.write(text)
        return
    write_text(path, (read_text(path) if exists(path) else "") + text)


@contextlib.contextmanager
def local_file(path: str) -> Iterator[str]:
    """A local file name to write ``path`` through, for writers that only take a file
    name (PIL, ``tokenizers``): ``path`` itself when local; for a URL a temporary file,
    uploaded to ``path`` when the block ends without an exception."""
    if not is_url(path):
        yield path
        return
    with tempfile.TemporaryDirectory() as tmp:
        local = os.path.join(tmp, posixpath.basename(path))
        yield local
        with builtins.open(local, "rb") as f:
            write_bytes(path, f.read())


def has_wildcards(pattern: str) -> bool:
    return _glob.has_magic(pattern)


def glob(pattern: str) -> list[str]:
    """The paths matching ``pattern`` (``*``, ``?``, ``[...]``, ``**`` across folders),
    sorted; a pattern without wildcards gives itself when it exists. A URL pattern
    (``gs://bucket/text/*.jsonl``) is listed through its object store."""
    if not _glob.has_magic(pattern):
        return [pattern] if exists(pattern) else []
    if not is_url(pattern):
        return sorted(_glob.glob(pattern, recursive=True))
    parts = pattern.split("/")
    first = next(i for i, part in enumerate(parts) if _glob.has_magic(part))
    root, rest = "/".join(parts[:first]), "/".join(parts[first:])
    return sorted(str(p) for p in _epath(root).glob(rest))
