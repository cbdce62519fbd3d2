"""Opening and writing safetensors files at a local path or a URL (``gs://``).

A local file is opened with ``safetensors.safe_open`` (memory-mapped: a tensor is read
only when asked for). A URL goes through ``fileio``: the header (names, dtypes, shapes)
is read on its own, then each tensor's byte range when it is asked for, so a checkpoint
in a bucket is neither downloaded whole nor held twice in host memory.
``safetensors.numpy.load(bytes)`` would do neither and cannot read bfloat16.

The format (https://github.com/huggingface/safetensors): 8 bytes little-endian header
size N, N bytes of JSON ``{name: {dtype, shape, data_offsets: [begin, end]}, ...}``
(offsets relative to the end of the header), then the data, little-endian, row-major.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable

import ml_dtypes
import numpy as np
from safetensors import safe_open
from safetensors.numpy import load_file, save_file

from liquid_jax import fileio
from liquid_jax.errors import InputError

_DTYPES = {
    "BOOL": np.bool_,
    "U8": np.uint8,
    "I8": np.int8,
    "U16": np.uint16,
    "I16": np.int16,
    "F16": np.float16,
    "BF16": ml_dtypes.bfloat16,
    "U32": np.uint32,
    "I32": np.int32,
    "F32": np.float32,
    "U64": np.uint64,
    "I64": np.int64,
    "F64": np.float64,
    "F8_E4M3": ml_dtypes.float8_e4m3fn,
    "F8_E5M2": ml_dtypes.float8_e5m2,
}


class _Slice:
    def __init__(self, shape: tuple[int, ...]):
        self._shape = shape

    def get_shape(self) -> list[int]:
        return list(self._shape)


class RemoteSafetensors:
    """A safetensors file at a URL with the part of ``safe_open``'s interface we use:
    ``keys()``, ``get_slice(name).get_shape()``, ``get_tensor(name)``."""

    def __init__(self, path: str):
        self.path = path
        self._file = fileio.open(path, "rb")
        try:
            size = int.from_bytes(self._file.read(8), "little")
            header = json.loads(self._file.read(size))
        except (ValueError, UnicodeDecodeError) as e:
            raise InputError(f"{path}: not a safetensors file: {e}") from None
        header.pop("__metadata__", None)
        self._header = header
        self._data_start = 8 + size

    def keys(self) -> list[str]:
        return list(self._header)

    def get_slice(self, name: str) -> _Slice:
        return _Slice(tuple(self._header[name]["shape"]))

    def get_tensor(self, name: str) -> np.ndarray:
        info = self._header[name]
        if info["dtype"] not in _DTYPES:
            raise InputError(f"{self.path}: tensor {name!r} has unsupported dtype {info['dtype']}")
        dtype = np.dtype(_DTYPES[info["dtype"]])
        begin, end = info["data_offsets"]
        shape = tuple(info["shape"])
        if end - begin != int(np.prod(shape, dtype=np.int64)) * dtype.itemsize:
            raise InputError(f"{self.path}: tensor {name!r} has a byte range that does not "
                             f"match its shape {shape} and dtype {info['dtype']}")  # fmt: skip
        self._file.seek(self._data_start + begin)
        data = self._file.read(end - begin)
        # The file is little-endian, as every machine this runs on. frombuffer views the
        # immutable bytes: copy into a writable array, as safe_open gives.
        return np.frombuffer(data, dtype).reshape(shape).copy()

    def __enter__(self) -> RemoteSafetensors:
        return self

    def __exit__(self, *exc) -> None:
        self._file.close()


def open_safetensors(path: str):
    """``safe_open(path, framework="numpy")`` for a local file, ``RemoteSafetensors`` for
    a URL; both are context managers."""
    return RemoteSafetensors(path) if fileio.is_url(path) else safe_open(path, framework="numpy")


def read_safetensors(path: str) -> dict[str, np.ndarray]:
    """Every tensor of the file at ``path`` (local or URL)."""
    if not fileio.is_url(path):
        return load_file(path)
    with RemoteSafetensors(path) as f:
        return {name: f.get_tensor(name) for name in f.keys()}  # noqa: SIM118 (not a dict)


def write_safetensors(path: str, tensors: dict[str, np.ndarray], metadata: dict) -> None:
    """Writes ``tensors`` to ``path`` (a URL's object is uploaded when complete)."""
    with fileio.local_file(path) as local:
        save_file(tensors, local, metadata=metadata)


def write_through(path: str, write: Callable[[str], None]) -> None:
    """Calls ``write(local_name)`` so that ``path`` never holds half a file: a local file is
    written under a temporary name and renamed; a URL's object appears whole on upload."""
    if fileio.is_url(path):
        with fileio.local_file(path) as local:
            write(local)
        return
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
