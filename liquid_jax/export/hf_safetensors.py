"""Reading and writing HF safetensors checkpoints (single file or sharded with an index),
in a local directory or at a URL (``gs://``); see ``safetensors_files`` for how."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable

import numpy as np

from liquid_jax import fileio
from liquid_jax.errors import PathNotFoundError
from liquid_jax.export.safetensors_files import open_safetensors, write_safetensors

SINGLE = "model.safetensors"
INDEX = "model.safetensors.index.json"


class CheckpointReader:
    """Lazy access to the tensors of an HF directory: ``names``, ``shape(n)``, ``get(n)``."""

    def __init__(self, directory: str):
        self.directory = directory
        index = fileio.join(directory, INDEX)
        single = fileio.join(directory, SINGLE)
        self._handles: dict[str, object] = {}
        if fileio.exists(index):
            with fileio.open(index) as f:
                self._file_of = dict(json.load(f)["weight_map"])
        elif fileio.exists(single):
            names = self._open(SINGLE).keys()
            self._file_of = {name: SINGLE for name in names}
        else:
            names = fileio.listdir(directory) if fileio.isdir(directory) else []
            others = [n for n in names if n.endswith((".bin", ".pt", ".pth"))]
            hint = f" (found {others}: only safetensors are read)" if others else ""
            raise PathNotFoundError(f"{directory}: no {SINGLE} or {INDEX}{hint}")

    @property
    def names(self) -> list[str]:
        return sorted(self._file_of)

    def __contains__(self, name: str) -> bool:
        return name in self._file_of

    def _open(self, file: str):
        if file not in self._handles:
            self._handles[file] = open_safetensors(fileio.join(self.directory, file))
        return self._handles[file]

    def _handle(self, name: str):
        file = self._file_of[name]
        if file not in self._handles and not fileio.exists(fileio.join(self.directory, file)):
            path = fileio.join(self.directory, file)
            raise PathNotFoundError(f"{path}: listed in {INDEX} for {name!r} but missing")
        return self._open(file)

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self._handle(name).get_slice(name).get_shape())

    def get(self, name: str) -> np.ndarray:
        return self._handle(name).get_tensor(name)


def write_checkpoint(
    directory: str,
    tensors: Iterable[tuple[str, tuple[int, ...], np.dtype, Callable[[], np.ndarray]]],
    max_shard_bytes: int = 5 * 1024**3,
) -> list[str]:
    """Writes ``(name, shape, dtype, make_array)`` tensors, sharded above ``max_shard_bytes``.

    Arrays are made one shard at a time, so host memory holds at most one shard of output.
    One shard is written as ``model.safetensors``; several as ``model-0000k-of-0000n``
    files plus ``model.safetensors.index.json``. Returns the file names written.
    """
    shards: list[list] = [[]]
    size = 0
    total = 0
    for item in tensors:
        nbytes = int(np.prod(item[1], dtype=np.int64)) * np.dtype(item[2]).itemsize
        if shards[-1] and size + nbytes > max_shard_bytes:
            shards.append([])
            size = 0
        shards[-1].append(item)
        size += nbytes
        total += nbytes
    # Stale shards (or an index) of an earlier save would confuse loaders.
    for name in fileio.listdir(directory) if fileio.isdir(directory) else []:
        if name == INDEX or (name.startswith("model") and name.endswith(".safetensors")):
            fileio.remove(fileio.join(directory, name))
    n = len(shards)
    files = [SINGLE] if n == 1 else [f"model-{k + 1:05d}-of-{n:05d}.safetensors" for k in range(n)]
    weight_map = {}
    for file, shard in zip(files, shards):
        arrays = {name: np.ascontiguousarray(make()) for name, _, _, make in shard}
        write_safetensors(fileio.join(directory, file), arrays, metadata={"format": "pt"})
        weight_map.update({name: file for name in arrays})
    if n > 1:
        with fileio.open(fileio.join(directory, INDEX), "w") as f:
            json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
    return files
