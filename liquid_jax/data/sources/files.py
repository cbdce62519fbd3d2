"""Random access to the records of text files (jsonl lines, lines, paragraphs).

``RecordIndex`` scans the files once (one pass, ~1 s per few hundred MB) and keeps only
the byte range and line number of every record. Reading record ``i`` goes through
``fileio.RangeReader``: one ``os.pread`` for a local file; for a URL (``gs://``) an
aligned 1 MiB block through a small per-file cache. Both are safe from several threads
and, after a fork or in a spawned Grain worker, reopen the file in that process.
Corpora far larger than memory allows for the index (two int64 per record) belong in
ArrayRecord or tfds instead.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from liquid_jax import fileio
from liquid_jax.errors import ConfigError, PathNotFoundError

UNITS = ("line", "paragraph")


def expand_paths(pattern: str | Sequence[str]) -> list[str]:
    """A path, a glob pattern or a list of them (local or ``gs://``) -> existing files,
    sorted per pattern."""
    patterns = [pattern] if isinstance(pattern, (str, os.PathLike)) else list(pattern)
    paths = []
    for p in map(os.fspath, patterns):
        if fileio.has_wildcards(p):
            found = [f for f in fileio.glob(p) if fileio.isfile(f)]
            if not found:
                raise PathNotFoundError(f"{p}: the pattern matches no files")
            paths.extend(found)
        elif fileio.isfile(p):
            paths.append(p)
        else:
            raise PathNotFoundError(f"{p}: no such file")
    if not paths:
        raise ConfigError("no input files given")
    return paths


class RecordIndex:
    """Byte ranges of the records of ``paths``.

    Args:
      paths: files, read in order; record ids are ``path:line`` (1-based, the first
        line of the record).
      unit: ``"line"``: every non-blank line is a record; ``"paragraph"``: every run of
        non-blank lines separated by blank lines is one record.
    """

    def __init__(self, paths: Sequence[str], unit: str = "line"):
        if unit not in UNITS:
            raise ConfigError(f"unit={unit!r}: use one of {UNITS}")
        self.paths, self.unit = [os.fspath(p) for p in paths], unit
        file_ids, starts, ends, lines = [], [], [], []
        for file_id, path in enumerate(self.paths):
            for start, end, line in _scan(path, unit):
                file_ids.append(file_id)
                starts.append(start)
                ends.append(end)
                lines.append(line)
        self._file_ids = np.asarray(file_ids, np.int32)
        self._starts = np.asarray(starts, np.int64)
        self._ends = np.asarray(ends, np.int64)
        self._lines = np.asarray(lines, np.int64)
        self._readers = [fileio.RangeReader(p) for p in self.paths]

    def __len__(self) -> int:
        return len(self._starts)

    def path(self, index: int) -> str:
        """The file holding record ``index``."""
        return self.paths[int(self._file_ids[index])]

    def line(self, index: int) -> int:
        """The (1-based) first line of record ``index`` in its file."""
        return int(self._lines[index])

    def record_id(self, index: int) -> str:
        return f"{self.path(index)}:{self.line(index)}"

    def read(self, index: int) -> bytes:
        """The bytes of record ``index`` (without the trailing newline)."""
        if not 0 <= index < len(self):
            raise IndexError(f"record {index} out of [0, {len(self)}) in {self.paths[:3]}")
        start, end = int(self._starts[index]), int(self._ends[index])
        return self._readers[int(self._file_ids[index])].read(start, end - start)


def _scan(path: str, unit: str):
    """Yields (start, end, line number) of each record of one file."""
    offset, line_no = 0, 0
    para = None  # (start, end, line) of the paragraph being read
    with fileio.open(path, "rb") as f:
        for raw in f:
            line_no += 1
            start, offset = offset, offset + len(raw)
            blank = not raw.strip()
            end = start + len(raw.rstrip(b"\r\n"))
            if unit == "line":
                if not blank:
                    yield start, end, line_no
            elif blank:
                if para is not None:
                    yield para
                    para = None
            elif para is None:
                para = (start, end, line_no)
            else:
                para = (para[0], end, para[2])
    if para is not None:
        yield para
