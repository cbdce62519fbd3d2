"""Reading and writing HF safetensors checkpoints (single file or sharded with an index)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable

import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file

SINGLE = "model.safetensors"
INDEX = "model.safetensors.index.json"


class CheckpointReader:
    """Lazy access to the tensors of an HF directory: ``names``, ``shape(n)``, ``get(n)``."""

    def __init__(self, directory: str):
        self.directory = directory
        index = os.path.join(directory, INDEX)
        single = os.path.join(directory, SINGLE)
        if os.path.exists(index):
            with open(index) as f:
                self._file_of = dict(json.load(f)["weight_map"])
        elif os.path.exists(single):
            with safe_open(single, framework="numpy") as f:
                self._file_of = {name: SINGLE for name in f.keys()}  # noqa: SIM118 (not a dict)
        else:
            others = [n for n in os.listdir(directory) if n.endswith((".bin", ".pt", ".pth"))]
            hint = f" (found {others}: only safetensors are read)" if others else ""
            raise FileNotFoundError(f"{directory}: no {SINGLE} or {INDEX}{hint}")
        self._handles: dict[str, object] = {}

    @property
    def names(self) -> list[str]:
        return sorted(self._file_of)

    def __contains__(self, name: str) -> bool:
        return name in self._file_of

    def _handle(self, name: str):
        file = self._file_of[name]
        if file not in self._handles:
            path = os.path.join(self.directory, file)
            if not os.path.exists(path):
                raise FileNotFoundError(f"{path}: listed in {INDEX} for {name!r} but missing")
            self._handles[file] = safe_open(path, framework="numpy")
        return self._handles[file]

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
    for name in os.listdir(directory):  # stale shards of an earlier save would confuse loaders
        if name == INDEX or (name.startswith("model") and name.endswith(".safetensors")):
            os.remove(os.path.join(directory, name))
    n = len(shards)
    files = [SINGLE] if n == 1 else [f"model-{k + 1:05d}-of-{n:05d}.safetensors" for k in range(n)]
    weight_map = {}
    for file, shard in zip(files, shards):
        arrays = {name: np.ascontiguousarray(make()) for name, _, _, make in shard}
        save_file(arrays, os.path.join(directory, file), metadata={"format": "pt"})
        weight_map.update({name: file for name in arrays})
    if n > 1:
        with open(os.path.join(directory, INDEX), "w") as f:
            json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
    return files
