"""The chunked, resumable encoding of one split (``SplitEncoder``), used by ``encode_images``.

Chunk ``k`` is records ``[k*N, (k+1)*N)`` of the source; process ``p`` of ``P`` takes its
records ``i % P == p``, loads and crops them on a thread pool (the next chunk loads while
this one encodes), encodes them in global batches split over the mesh, and writes
``chunkKKKKKK-hostPPPofQQQ-00000-of-00001.array_record`` (renamed from ``*.partial`` on
close) and then ``chunkKKKKKK-hostPPPofQQQ.done.json``. A chunk is finished when every
process's marker exists; anything else a chunk left is deleted and the chunk redone.
The output folder may be a URL (``gs://bucket/run/codes/train``): every file goes
through ``fileio`` (shards are written locally and uploaded whole when closed).
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import json
import math
import os
import time

import jax
import numpy as np
from absl import logging
from flax import nnx
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from liquid_jax import fileio
from liquid_jax.data.images import to_model_input
from liquid_jax.data.skips import BadRecord, SkipCounter, SkipPolicy, TooManySkipsError
from liquid_jax.data.sources.code_records import CodeRecordWriter
from liquid_jax.encode.preprocess import Preprocess, load_record
from liquid_jax.errors import ConfigError
from liquid_jax.models.vqgan import VQGAN
from liquid_jax.models.vqgan_apply import make_encode_fn
from liquid_jax.models.vqgan_tiles import encode_distinct_tiles
from liquid_jax.parallel.host_batch import batch_sharding, host_local_to_global
from liquid_jax.progress import Progress

MANIFEST_FILE = "manifest.json"
SETTINGS_FILE = "encode_config.json"

# -- multi-host helpers ---------------------------------------------------------------


def _allgather(x) -> np.ndarray:
    """int[...] of each process -> int[P, ...]."""
    x = np.asarray(x)
    if jax.process_count() == 1:
        return x[None]

    return np.asarray(multihost_utils.process_allgather(x))


def barrier(name: str) -> None:
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices(name)


def _local_rows(x: jax.Array) -> np.ndarray:
    """This process's rows of a batch-sharded global array, in order."""
    if jax.process_count() == 1:
        return np.asarray(x)
    shards = {s.index[0].start or 0: s.data for s in x.addressable_shards}
    return np.concatenate([np.asarray(shards[k]) for k in sorted(shards)])


def _check_skips(counter: SkipCounter, final: bool) -> None:
    """``counter.check`` on the totals of all processes (all raise together)."""
    if jax.process_count() == 1:
        counter.check(final)
        return
    seen, skipped = _allgather([counter.seen, counter.skipped]).sum(axis=0)
    probe = SkipCounter(counter.name, counter.policy)
    probe.seen, probe.counts = int(seen), {"any": int(skipped)}
    why = probe.exceeded(final)
    if why:
        raise TooManySkipsError(f"{counter.name}: {why} (all hosts).\n{counter.summary()}")


def write_json(path: str, obj) -> None:
    """Writes ``obj`` whole or not at all (an object store's upload is already atomic)."""
    text = json.dumps(obj, indent=1, sort_keys=True)
    if fileio.is_url(path):
        fileio.write_text(path, text)
        return
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def _read_json(path: str):
    try:
        return json.loads(fileio.read_text(path))
    except (FileNotFoundError, json.JSONDecodeError):
        return None


# -- one split --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class EncodeOptions:
    batch_size: int = 64  # global, over all processes and devices
    records_per_chunk: int = 1024
    num_threads: int = 8  # image decoding and resizing
    policy: SkipPolicy = SkipPolicy()
    log_every_s: float = 10.0


class SplitEncoder:
    """Encodes one source into ``out_dir`` chunk by chunk (see the module docstring)."""

    def __init__(self, model: VQGAN, mesh: Mesh, pre: Preprocess, options: EncodeOptions):
        self.pre, self.options, self.mesh = pre, options, mesh
        self.nproc, self.proc = jax.process_count(), jax.process_index()
        spec = batch_sharding(mesh, 4).spec
        batch_axes = spec[0] if spec else None
        batch_axes = (batch_axes,) if isinstance(batch_axes, str) else tuple(batch_axes or ())
        dp = math.prod(mesh.shape[a] for a in batch_axes)
        b = options.batch_size
        if b < 1 or b % dp or b % self.nproc:
            raise ConfigError(
                f"encode-images: batch_size={b} must be a positive multiple of the "
                f"data-parallel size {dp} and of the process count {self.nproc}"
            )
        self.local_batch = b // self.nproc
        f = model.config.downsample_factor
        for h, w in pre.shapes():
            if h % f or w % f:
                raise ConfigError(
                    f"encode-images: input size {w}x{h} is not a multiple of the VQGAN's "
                    f"downsample factor {f}"
                )
        graphdef, state = nnx.split(model)
        if self.nproc == 1:
            state = jax.device_put(state, NamedSharding(mesh, P()))
        self.state, self.encode_fn = state, make_encode_fn(graphdef, mesh)
        # A tile-local encoder: each distinct tile of a chunk is encoded once (one process).
        tile = model.config.encode_tile
        self.tile_px = tile * f if tile and self.nproc == 1 else 0

    def prefix(self, chunk: int) -> str:
        return f"chunk{chunk:06d}-host{self.proc:03d}of{self.nproc:03d}"

    def _marker(self, out_dir: str, chunk: int) -> str:
        return fileio.join(out_dir, self.prefix(chunk) + ".done.json")

    def _finished(self, out_dir: str, chunk: int) -> dict | None:
        marker = _read_json(self._marker(out_dir, chunk))
        if not marker or marker.get("chunk") != chunk:
            return None
        shard = fileio.join(out_dir, self.prefix(chunk) + "-00000-of-00001.array_record")
        return marker if marker["records"] == 0 or fileio.isfile(shard) else None

    def _discard(self, out_dir: str, chunk: int) -> None:
        """Removes whatever an unfinished chunk of this process left behind."""
        head = self.prefix(chunk)
        for name in fileio.listdir(out_dir):
            if name.startswith((head + "-", head + ".")):
                fileio.remove(fileio.join(out_dir, name))

    def chunk_indices(self, chunk: int, total: int) -> list[int]:
        n = self.options.records_per_chunk
        return [
            i for i in range(chunk * n, min(total, (chunk + 1) * n)) if i % self.nproc == self.proc
        ]

    def _check_settings(self, out_dir: str, settings: dict) -> None:
        path = fileio.join(out_dir, SETTINGS_FILE)
        old = _read_json(path)
        if old is not None and old != settings:
            diff = sorted(k for k in set(old) | set(settings) if old.get(k) != settings.get(k))
            raise ConfigError(
                f"encode-images: {out_dir} was written with other settings (differ: {diff}); "
                f"use a new workdir or delete the folder. Was: "
                f"{ {k: old.get(k) for k in diff} }, now: { {k: settings.get(k) for k in diff} }"
            )
        barrier("encode_images_settings_read")
        if old is None and self.proc == 0:
            write_json(path, settings)

    def run(self, source, out_dir: str, settings: dict, name: str) -> dict:
        """Encodes every record of ``source``; returns the split's manifest."""
        fileio.makedirs(out_dir)
        total, per_chunk = len(source), self.options.records_per_chunk
        settings = {**settings, "num_records": total, "records_per_chunk": per_chunk,
                    "hosts": self.nproc}  # fmt: skip
        settings = json.loads(json.dumps(settings))  # as read back: lists, not tuples
        self._check_settings(out_dir, settings)
        num_chunks = -(-total // per_chunk)
        local = [self._finished(out_dir, k) for k in range(num_chunks)]
        done = _allgather([m is not None for m in local]).all(axis=0)
        todo = [k for k in range(num_chunks) if not done[k]]
        for k in todo:
            self._discard(out_dir, k)
        counter = SkipCounter.merged(
            [m["skips"] for m, d in zip(local, done) if d],
            f"encode-images {name} ({getattr(source, 'name', '?')})",
            self.options.policy,
        )
        length = lambda k: min(per_chunk, total - k * per_chunk)
        finished = sum(length(k) for k in range(num_chunks) if done[k])
        if finished:
            logging.info(
                "encode-images %s: resuming, %d of %d chunks already done",
                name,
                num_chunks - len(todo),
                num_chunks,
            )
        progress = Progress(total, finished, unit="image", every_s=self.options.log_every_s)
        t0 = time.perf_counter()
        pool = concurrent.futures.ThreadPoolExecutor(max(1, self.options.num_threads))
        try:
            submit = lambda k: [
                pool.submit(load_record, source, i, self.pre) for i in self.chunk_indices(k, total)
            ]
            pending = submit(todo[0]) if todo else []
            for j, k in enumerate(todo):
                loaded = [f.result() for f in pending]
                # The next chunk loads on the threads while this one encodes.
                pending = submit(todo[j + 1]) if j + 1 < len(todo) else []
                self._finish_chunk(out_dir, k, loaded, counter)
                _check_skips(counter, final=False)
                finished += length(k)
                progress.update(finished, f"{name}, {counter.skipped} skipped")
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        seconds = time.perf_counter() - t0
        counter.log_summary()
        _check_skips(counter, final=True)
        barrier("encode_images_split_done")
        return self._manifest(out_dir, num_chunks, set(todo), seconds, settings)

    def _finish_chunk(self, out_dir: str, chunk: int, loaded: list, counter: SkipCounter) -> None:
        t0 = time.perf_counter()
        chunk_skips = SkipCounter(counter.name, log_first=0)
        good = []
        for item in loaded:
            if isinstance(item, BadRecord):
                counter.skip_error(item)
                chunk_skips.skip_error(item)
            else:
                counter.ok()
                chunk_skips.ok()
                good.append(item)
        codes = self._encode(good)
        grids = collections.Counter()
        with CodeRecordWriter(
            out_dir, prefix=self.prefix(chunk), records_per_shard=max(1, len(good))
        ) as writer:
            for (record, _), c in zip(good, codes):
                grids[f"{c.shape[0]}x{c.shape[1]}"] += 1
                writer.write(
                    {
                        "codes": c.reshape(-1),
                        "grid_h": c.shape[0],
                        "grid_w": c.shape[1],
                        "caption": record["caption"],
                        "orig_w": int(record["width"]),
                        "orig_h": int(record["height"]),
                        "source_id": str(record["id"]),
                    }
                )
        marker = {
            "chunk": chunk, "host": self.proc, "hosts": self.nproc, "records": len(good),
            "skips": chunk_skips.state(), "grids": dict(grids),
            "seconds": time.perf_counter() - t0,
        }  # fmt: skip
        write_json(self._marker(out_dir, chunk), marker)

    def _encode(self, items: list) -> list[np.ndarray]:
        """[(record, uint8[h, w, 3])] -> codes int32[h/f, w/f] each, in order.

        Images are grouped by size; every process runs the same number of batches per
        size (the most any process has), padding with blank images.
        """
        if self.tile_px:
            return self._encode_distinct_tiles(items)
        shapes = self.pre.shapes()
        groups = {s: [] for s in shapes}
        for pos, (_, pixels) in enumerate(items):
            groups[pixels.shape[:2]].append(pos)
        most = _allgather([len(groups[s]) for s in shapes]).max(axis=0)
        out: list = [None] * len(items)
        inflight = collections.deque()

        def collect():
            positions, codes = inflight.popleft()
            rows = _local_rows(codes)
            for pos, row in zip(positions, rows):
                out[pos] = row

        lb = self.local_batch
        for shape, n in zip(shapes, most):
            positions = groups[shape]
            for s in range(-(-int(n) // lb)):
                part = positions[s * lb : (s + 1) * lb]
                batch = np.zeros((lb, *shape, 3), np.uint8)
                for row, pos in enumerate(part):
                    batch[row] = items[pos][1]
                x = host_local_to_global(to_model_input(batch), self.mesh)
                inflight.append((part, self.encode_fn(self.state, x)))
                if len(inflight) > 2:  # keep the device busy while the host copies back
                    collect()
        while inflight:
            collect()
        return out

    def _encode_distinct_tiles(self, items: list) -> list[np.ndarray]:
        """``_encode`` for a tile-local encoder, whose codes for a tile depend on its
        pixels alone: every distinct p x p tile of the chunk is encoded once, as a p x p
        image, and the codes are gathered back into each image's grid."""
        groups = collections.defaultdict(list)
        for pos, (_, pixels) in enumerate(items):
            groups[pixels.shape[:2]].append(pos)
        out: list = [None] * len(items)
        encode = lambda batch: self.encode_fn(
            self.state, host_local_to_global(to_model_input(batch), self.mesh)
        )
        for positions in groups.values():
            images = np.stack([items[pos][1] for pos in positions])
            grids = encode_distinct_tiles(encode, images, self.tile_px, self.local_batch)
            for pos, grid in zip(positions, grids):
                out[pos] = grid
        return out

    def _manifest(
        self, out_dir: str, num_chunks: int, todo: set, seconds: float, settings: dict
    ) -> dict:
        markers = [
            m
            for name in sorted(fileio.listdir(out_dir))
            if name.endswith(".done.json") and (m := _read_json(fileio.join(out_dir, name)))
        ]
        skips = SkipCounter.merged([m["skips"] for m in markers])
        grids = collections.Counter()
        for m in markers:
            grids.update(m["grids"])
        this_run = sum(m["records"] for m in markers if m["chunk"] in todo)
        manifest = {
            **settings,
            "chunks": num_chunks,
            "chunks_this_run": len(todo),
            "encoded": sum(m["records"] for m in markers),
            "skipped": skips.skipped,
            "skips": skips.counts,
            "skip_examples": skips.examples,
            "grids": dict(grids),
            "seconds_this_run": round(seconds, 3),
            "images_per_s": round(this_run / seconds, 2) if seconds > 0 and this_run else None,
        }
        if self.proc == 0:
            write_json(fileio.join(out_dir, MANIFEST_FILE), manifest)
        return manifest
