"""How ArrayRecord shards at a URL are read: in the bucket, or from a local copy.

array_record's reader is C++ and takes a file name, not a Python file object, so it
cannot read through ``fileio``. Two ways remain:

- ``gs://`` without options: array_record opens the shards in the bucket itself (its
  built-in Cloud Storage client, Application Default Credentials: on a TPU VM the
  service account). Nothing is copied; every record is a ranged read. The first shard
  is opened up front, so missing credentials fail at the start with the shard's name
  rather than as an empty source.
- ``?cache=DIR`` (any URL, and the only way for ``s3://`` / ``az://``): each process
  copies the shards once into ``DIR`` through ``fileio`` (gcsfs, the credentials of
  every other file of the run) and reads the copies. A copy is reused while its size
  equals the object's; each copy is renamed into place whole, so processes sharing a
  machine and ``DIR`` never read a half-copied shard.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence

from absl import logging
from array_record.python.array_record_module import ArrayRecordReader

from liquid_jax import fileio
from liquid_jax.errors import ConfigError, InputError

DIRECT_SCHEMES = ("gs",)


def readable_shards(paths: Sequence[str], cache: str | None = None) -> list[str]:
    """Shard paths (local or URLs) -> names array_record can open (see the module
    docstring): local paths as they are, URLs in the bucket or copied into ``cache``."""
    paths = list(paths)
    urls = [p for p in paths if fileio.is_url(p)]
    if not urls:
        return paths
    if cache:
        return _cached(paths, cache)
    scheme = urls[0].split("://", 1)[0]
    if scheme not in DIRECT_SCHEMES:
        raise ConfigError(
            f"{urls[0]}: array_record reads only {', '.join(DIRECT_SCHEMES)}:// itself; "
            f"add ?cache=DIR to the codes: spec to copy the shards to a local folder"
        )
    if not ArrayRecordReader(urls[0]).ok():
        raise InputError(
            f"{urls[0]}: array_record cannot open the shard in the bucket (no credentials "
            "here, or an array_record without Cloud Storage support); add ?cache=DIR to "
            "the codes: spec to copy the shards through gcsfs instead"
        )
    return paths


def _cached(paths: list[str], cache: str) -> list[str]:
    out, to_copy = [], []
    for path in paths:
        if not fileio.is_url(path):
            out.append(path)
            continue
        folder, name = path.rsplit("/", 1)
        # One sub-folder per source folder, so equal shard names of two sources differ.
        key = hashlib.sha1(folder.encode()).hexdigest()[:12]
        local = os.path.join(cache, f"{key}-{folder.rsplit('/', 1)[-1]}", name)
        size = fileio.size(path)
        if not (os.path.isfile(local) and os.path.getsize(local) == size):
            to_copy.append((path, local, size))
        out.append(local)
    if to_copy:
        total = sum(size for _, _, size in to_copy) / 2**20
        logging.info(
            "codes: copying %d shards (%.1f MiB) of %s to %s (once per machine)",
            len(to_copy),
            total,
            fileio.dirname(to_copy[0][0]),
            cache,
        )
        for path, local, _ in to_copy:
            fileio.copy(path, local)
    return out
