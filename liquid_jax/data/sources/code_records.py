"""Extracted VQ codes on disk: ArrayRecord shards of one record per image.

``encode-images`` writes them, the LLM pipeline reads them. A record (``CodeRecord``)::

    {"codes": int32[grid_h * grid_w]   # raster order, row-major over the code grid
     "grid_h": int, "grid_w": int,     # code grid (image size / downsample factor)
     "caption": str,
     "orig_w": int, "orig_h": int,     # the source image's size in pixels
     "source_id": str}                 # where it came from (path, jsonl:line, ...)

Encoding of one record (little-endian)::

    b"LQCR" | uint32 header_len | header: UTF-8 JSON | codes: raw array

The header holds every field but ``codes`` plus ``"v"`` (format version, 1) and
``"dtype"`` (``"<u2"`` when all codes fit 16 bits, else ``"<i4"``); the codes take
``grid_h * grid_w`` elements of that dtype. Readers always return int32.

Files: ``{prefix}-{i:05d}-of-{n:05d}.array_record`` (``group_size:1``, for random
access). ``CodeRecordWriter`` writes ``*.partial`` files and renames them when closed,
so an interrupted run leaves no file that looks complete. Several writers (one per
host) can share a folder with different prefixes; ``CodeRecordSource`` reads every
complete set in the folder (or one prefix) as one random-access source.

The folder may be a URL (``gs://bucket/codes/train``): the writer writes its shards
locally in a temporary folder and uploads each under its final name when closed (an
object appears whole, so no ``*.partial`` stage); the source lists the folder through
``fileio`` and reads the shards as ``remote_shards`` says (in the bucket, or copied
once into ``cache``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import tempfile
from collections.abc import Sequence
from typing import TypedDict

import numpy as np
from array_record.python.array_record_data_source import ArrayRecordDataSource
from array_record.python.array_record_module import ArrayRecordWriter

from liquid_jax import fileio
from liquid_jax.data.skips import BadRecord
from liquid_jax.data.sources.remote_shards import readable_shards
from liquid_jax.errors import InputError, PathNotFoundError

MAGIC = b"LQCR"
VERSION = 1
_SHARD_RE = re.compile(r"^(?P<prefix>.+)-(?P<index>\d{5})-of-(?P<count>\d{5})\.array_record$")
_HEADER_FIELDS = ("grid_h", "grid_w", "caption", "orig_w", "orig_h", "source_id")


class CodeRecord(TypedDict):
    codes: np.ndarray  # int32[grid_h * grid_w]
    grid_h: int
    grid_w: int
    caption: str
    orig_w: int
    orig_h: int
    source_id: str


def shard_name(prefix: str, index: int, count: int) -> str:
    return f"{prefix}-{index:05d}-of-{count:05d}.array_record"


def encode_code_record(record: CodeRecord) -> bytes:
    """CodeRecord -> bytes (see the module docstring); checks the grid and code range."""
    codes = np.asarray(record["codes"])
    grid_h, grid_w = int(record["grid_h"]), int(record["grid_w"])
    where = record.get("source_id", "?")
    if codes.size != grid_h * grid_w or grid_h < 1 or grid_w < 1:
        raise ValueError(f"code record {where}: {codes.shape} codes for a {grid_h}x{grid_w} grid")
    if not np.issubdtype(codes.dtype, np.integer) or (codes.size and codes.min() < 0):
        raise ValueError(f"code record {where}: codes must be non-negative integers")
    dtype = "<u2" if codes.max() < 2**16 else "<i4"
    header = {"v": VERSION, "dtype": dtype}
    header.update({k: record[k] for k in _HEADER_FIELDS})
    header.update({k: int(header[k]) for k in ("grid_h", "grid_w", "orig_w", "orig_h")})
    blob = json.dumps(header, ensure_ascii=False).encode("utf-8")
    return MAGIC + struct.pack("<I", len(blob)) + blob + codes.reshape(-1).astype(dtype).tobytes()


def decode_code_record(data: bytes, where: str = "?") -> CodeRecord:
    """bytes -> CodeRecord with int32 codes; raises ``BadRecord("bad_codes")``."""
    try:
        if data[:4] != MAGIC:
            raise ValueError(f"not a code record (magic {bytes(data[:4])!r})")
        (size,) = struct.unpack("<I", data[4:8])
        header = json.loads(data[8 : 8 + size].decode("utf-8"))
        if header.get("v") != VERSION:
            raise ValueError(f"format version {header.get('v')}, this reader knows {VERSION}")
        n = int(header["grid_h"]) * int(header["grid_w"])
        codes = np.frombuffer(data, dtype=header["dtype"], count=n, offset=8 + size)
        if 8 + size + codes.nbytes != len(data):
            raise ValueError(f"{len(data) - 8 - size} code bytes for {n} codes")
    except (ValueError, KeyError, TypeError, struct.error) as e:
        raise BadRecord("bad_codes", where, str(e)) from None
    out = {k: header[k] for k in _HEADER_FIELDS}
    out["codes"] = codes.astype(np.int32)
    return out  # type: ignore[return-value]


class CodeRecordWriter:
    """Writes code records into shards of ``records_per_shard`` records.

    Use as a context manager (or call ``close``); ``close`` renames the shards to their
    final ``-of-N`` names and returns their paths. ``abort`` removes what was written.
    """

    def __init__(self, directory: str, *, prefix: str = "codes", records_per_shard: int = 10_000):
        if records_per_shard < 1:
            raise ValueError(f"records_per_shard={records_per_shard} must be >= 1")
        if "/" in prefix or not prefix:
            raise ValueError(f"prefix={prefix!r} must be a non-empty file name part")
        fileio.makedirs(directory)
        names = fileio.listdir(directory) if fileio.isdir(directory) else []
        existing = [f for f in names if _matches(f, prefix)]
        if existing:
            raise FileExistsError(
                f"{directory} already holds {prefix} shards ({existing[0]}, ...); "
                "remove them or use another prefix"
            )
        self.directory, self.prefix, self.records_per_shard = directory, prefix, records_per_shard
        self.count = 0
        # A URL folder: shards are written here and uploaded on close.
        self._staging = tempfile.mkdtemp(prefix="codes-") if fileio.is_url(directory) else None
        self._partials: list[str] = []
        self._writer = None
        self._closed = False

    def _partial(self, index: int) -> str:
        folder = self._staging or self.directory
        return os.path.join(folder, f"{self.prefix}-{index:05d}.array_record.partial")

    def write(self, record: CodeRecord) -> None:
        if self._closed:
            raise ValueError("CodeRecordWriter is closed")
        data = encode_code_record(record)
        if self._writer is None or self.count % self.records_per_shard == 0:
            if self._writer is not None:
                self._writer.close()
            self._partials.append(self._partial(len(self._partials)))
            self._writer = ArrayRecordWriter(self._partials[-1], "group_size:1")
        self._writer.write(data)
        self.count += 1

    def close(self) -> list[str]:
        """Finishes the shards; returns the final paths (none if nothing was written)."""
        if self._closed:
            return []
        self._closed = True
        if self._writer is not None:
            self._writer.close()
        n = len(self._partials)
        paths = []
        for i, partial in enumerate(self._partials):
            paths.append(fileio.join(self.directory, shard_name(self.prefix, i, n)))
            if self._staging:
                fileio.copy(partial, paths[-1])
            else:
                os.replace(partial, paths[-1])
        if self._staging:
            shutil.rmtree(self._staging, ignore_errors=True)
        return paths

    def abort(self) -> None:
        self._closed = True
        if self._writer is not None:
            self._writer.close()
        for partial in self._partials:
            if os.path.exists(partial):
                os.remove(partial)
        if self._staging:
            shutil.rmtree(self._staging, ignore_errors=True)

    def __enter__(self) -> CodeRecordWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def _matches(filename: str, prefix: str | None) -> bool:
    m = _SHARD_RE.match(filename)
    return bool(m) and (prefix is None or m["prefix"] == prefix)


def find_shards(directory: str, prefix: str | None = None) -> list[str]:
    """Complete shard sets in ``directory`` (all of ``prefix``'s, or every prefix), sorted.

    Raises if none are found or a set misses a shard.
    """
    if not fileio.isdir(directory):
        raise PathNotFoundError(f"{directory}: no such code-record folder")
    groups: dict[str, dict[int, tuple[int, str]]] = {}
    for name in sorted(fileio.listdir(directory)):
        m = _SHARD_RE.match(name)
        if m and (prefix is None or m["prefix"] == prefix):
            groups.setdefault(m["prefix"], {})[int(m["index"])] = (int(m["count"]), name)
    if not groups:
        raise PathNotFoundError(
            f"{directory}: no {prefix or '*'}-NNNNN-of-NNNNN.array_record code shards"
        )
    paths = []
    for name, shards in sorted(groups.items()):
        counts = {count for count, _ in shards.values()}
        expected = set(range(max(counts))) if len(counts) == 1 else None
        if expected is None or set(shards) != expected:
            missing = sorted((expected or set()) - set(shards))[:5]
            raise InputError(
                f"{directory}: shard set {name!r} is incomplete or mixed (counts {sorted(counts)}, "
                f"missing indices {missing})"
            )
        paths += [fileio.join(directory, shards[i][1]) for i in sorted(shards)]
    return paths


class CodeRecordSource:
    """Random access over all code records of a folder (or an explicit list of shards),
    local or at a URL; ``cache``: a local folder to copy URL shards into first (see
    ``remote_shards``).

    ``src[i]`` -> ``CodeRecord`` (int32 codes); a corrupt record raises ``BadRecord``.
    """

    def __init__(
        self,
        directory_or_paths: str | Sequence[str],
        prefix: str | None = None,
        cache: str | None = None,
    ):
        if isinstance(directory_or_paths, str):
            self.paths = find_shards(directory_or_paths, prefix)
            self.name = f"code records {directory_or_paths}"
        else:
            self.paths = [os.fspath(p) for p in directory_or_paths]
            self.name = f"code records {self.paths[0]} (+{len(self.paths) - 1})"
        self._source = ArrayRecordDataSource(readable_shards(self.paths, cache))

    def __len__(self) -> int:
        return len(self._source)

    def __getitem__(self, index: int) -> CodeRecord:
        if not 0 <= index < len(self):
            raise IndexError(f"{self.name}: index {index} out of [0, {len(self)})")
        return decode_code_record(self._source[index], f"{self.name}:{index}")

    def __getitems__(self, indices: Sequence[int]) -> list[CodeRecord]:
        records = self._source.__getitems__(indices)
        return [decode_code_record(r, f"{self.name}:{i}") for r, i in zip(records, indices)]

    def __repr__(self) -> str:
        return f"CodeRecordSource({len(self.paths)} shards, len={len(self)})"
