"""File access for run directories that may be local paths or URLs (``gs://bucket/run``).

Local paths go through the builtins (``open``, ``os.path``, ``os.makedirs``) exactly as
before. URLs go through ``etils.epath``: for ``gs://`` that is TensorFlow's ``gfile`` when
TensorFlow is installed, otherwise fsspec's ``gcsfs`` (the ``tpu`` extra installs it).
Object stores cannot append to an object, so ``open`` refuses mode ``"a"`` on a URL (gcsfs
would silently overwrite instead) and ``append_text`` rewrites the object.

Data sources read records at random offsets through ``RangeReader`` (``os.pread`` on a
local file; aligned blocks through a small cache on a URL) and copy whole files once to
a local folder with ``copy`` when a reader takes only local names.
"""

from __future__ import annotations

import builtins
import collections
import contextlib
import fnmatch
import glob as _glob
import os
import posixpath
import re
import tempfile
import threading
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


def dirname(path: str) -> str:
    return posixpath.dirname(path) if is_url(path) else os.path.dirname(path)


def relpath(path: str, start: str) -> str:
    """``path`` relative to the folder ``start`` (for a URL, ``path`` must lie under it)."""
    if not is_url(path):
        return os.path.relpath(path, start)
    head = start.rstrip("/") + "/"
    if not path.startswith(head):
        raise ValueError(f"{path} is not under {start}")
    return path[len(head) :]


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


def size(path: str) -> int:
    """The size of the file (or object) at ``path`` in bytes."""
    return int(_epath(path).stat().length) if is_url(path) else os.path.getsize(path)


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
    (``gs://bucket/text/*.jsonl``) is listed through its object store; one with ``**``
    lists everything under the folder before it (which epath refuses to do by itself)."""
    if not _glob.has_magic(pattern):
        return [pattern] if exists(pattern) else []
    if not is_url(pattern):
        return sorted(_glob.glob(pattern, recursive=True))
    parts = pattern.split("/")
    first = next(i for i, part in enumerate(parts) if _glob.has_magic(part))
    root, rest = "/".join(parts[:first]), parts[first:]
    if "**" not in rest:
        return sorted(str(p) for p in _epath(root).glob("/".join(rest)))
    found = []
    # Backends name the folders they walk without the scheme (gcsfs: "bucket/dir").
    key = lambda path: os.fspath(path).split("://", 1)[-1].strip("/")
    for folder, dirs, files in _epath(root).walk():
        below = key(folder)[len(key(root)) :].strip("/")
        prefix = below.split("/") if below else []
        for name in dirs + files:
            if _match_parts(rest, [*prefix, name]):
                found.append(join(root, *prefix, name))
    return sorted(found)


def _match_parts(pattern: list[str], parts: list[str]) -> bool:
    """``glob``'s rule for one path split at ``/``: ``**`` is any number of folders, other
    parts match one name each (``fnmatch``; names starting with ``.`` only explicitly)."""
    if not pattern:
        return not parts
    if pattern[0] == "**":
        hidden = next((i for i, p in enumerate(parts) if p.startswith(".")), len(parts))
        return any(_match_parts(pattern[1:], parts[i:]) for i in range(hidden + 1))
    if not parts or (parts[0].startswith(".") and not pattern[0].startswith(".")):
        return False
    return fnmatch.fnmatchcase(parts[0], pattern[0]) and _match_parts(pattern[1:], parts[1:])


_COPY_BLOCK = 8 << 20


def copy(src: str, dst: str) -> None:
    """Copies the file (or object) ``src`` to ``dst``, either local or a URL, streaming
    in blocks. ``dst`` appears whole or not at all: a local file is written under a
    temporary name and renamed, an object becomes visible when its upload completes."""
    if is_url(dst):
        with open(src, "rb") as f, open(dst, "wb") as g:
            while block := f.read(_COPY_BLOCK):
                g.write(block)
        return
    os.makedirs(os.path.dirname(os.path.abspath(dst)), exist_ok=True)
    tmp = f"{dst}.partial{os.getpid()}"
    try:
        with open(src, "rb") as f, builtins.open(tmp, "wb") as g:
            while block := f.read(_COPY_BLOCK):
                g.write(block)
        os.replace(tmp, dst)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


class RangeReader:
    """Random reads of byte ranges of one file, safe from several threads and processes.

    A local file is read with one ``os.pread`` per call. A URL is read in aligned blocks
    of ``block_size`` bytes through one open object per thread, keeping the
    ``max_blocks`` most recently used: records that lie close together (a shuffled
    window, one record read several times) cost one request per block, not per record.
    Open files and cached blocks stay behind when the reader is pickled into a worker
    process or the process forks.
    """

    def __init__(self, path: str, block_size: int = 1 << 20, max_blocks: int = 16):
        self.path, self.block_size, self.max_blocks = os.fspath(path), block_size, max_blocks
        self.url = is_url(self.path)
        self._reset()

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._fd: int | None = None
        self._local = threading.local()  # one open object per thread: reads run in parallel
        self._blocks: collections.OrderedDict[int, bytes] = collections.OrderedDict()
        self._lock = threading.Lock()

    def read(self, start: int, size: int) -> bytes:
        """``size`` bytes from offset ``start`` (fewer at the end of the file)."""
        if self._pid != os.getpid():  # forked: the descriptor and objects are the parent's
            self._reset()
        if not self.url:
            if self._fd is None:
                with self._lock:
                    if self._fd is None:
                        self._fd = os.open(self.path, os.O_RDONLY)
            return os.pread(self._fd, size, start)
        bs, parts = self.block_size, []
        for block in range(start // bs, (start + max(size, 1) - 1) // bs + 1):
            data = self._block(block)
            lo = max(start - block * bs, 0)
            parts.append(data[lo : start + size - block * bs])
        return b"".join(parts)

    def _block(self, block: int) -> bytes:
        with self._lock:
            data = self._blocks.get(block)
            if data is not None:
                self._blocks.move_to_end(block)
                return data
        file = getattr(self._local, "file", None)
        if file is None:
            file = self._local.file = open(self.path, "rb")
        file.seek(block * self.block_size)
        data = file.read(self.block_size)
        with self._lock:
            self._blocks[block] = data
            if len(self._blocks) > self.max_blocks:
                self._blocks.popitem(last=False)
        return data

    def __getstate__(self):
        return {"path": self.path, "block_size": self.block_size,
                "max_blocks": self.max_blocks, "url": self.url}  # fmt: skip

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._reset()

    def close(self) -> None:
        if getattr(self, "_pid", None) == os.getpid():
            if self._fd is not None:
                with contextlib.suppress(OSError):
                    os.close(self._fd)
            file = getattr(self._local, "file", None)
            if file is not None:
                with contextlib.suppress(Exception):  # whatever the object store raises
                    file.close()
                self._local.file = None
        self._fd = None

    def __del__(self):
        # Not contextlib.suppress: at interpreter exit module globals may already be None.
        try:  # noqa: SIM105
            self.close()
        except Exception:
            pass
