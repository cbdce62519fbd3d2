"""The LLM's input: text and image-code sources -> packed, batched, resumable Grain stream.

    it = make_iterator(shapes_config(), tokenizer)     # or PipelineConfig.from_config(c.data)
    batch = next(it)     # {tokens, loss_mask, segment_ids, positions, task}: int32[B/hosts, L]
    state = it.get_state()            # JSON-able; the trainer stores it in the checkpoint
    it.set_state(state)               # same config (and workers) -> the same next batches
    arrays = to_global_batch(batch, mesh)       # global, batch-sharded jax.Arrays

The graph, per stream (text; image-text = code records)::

    source -> SafeSource (BadRecord -> counted skip) -> format (per-record RNG)
           -> shuffle(seed, reshuffled every epoch) -> repeat(num_epochs)

then ``mix`` (weights by record) -> this host's slice (``[process_index::process_count]``)
-> ``FlattenExamples`` (one example per element, skips counted) -> first-fit ``pack``
-> ``batch`` -> ``AttachSkips`` -> ``mp_prefetch`` (``num_workers`` processes, each
packing its own share). Formatting sits before the shuffle only on paper: Grain map
datasets are lazy, so a record is formatted when the shuffled stream reaches it.

Everything is a function of the config, seed, host count and worker count: the state
restores exactly with the same ones (``set_state`` checks), not across a change of
workers or hosts (Grain packs per worker). Skips of every worker are merged in the main
process, checked against the thresholds after every batch, and summarised at the end.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import grain
import jax
import numpy as np
from absl import flags, logging

from liquid_jax.data.pipeline.config import PipelineConfig, shapes_config
from liquid_jax.data.pipeline.packing import SKIPS_KEY, AttachSkips, FlattenExamples, pack
from liquid_jax.data.pipeline.record_format import (
    FormatOptions,
    ImageTextFormatter,
    SafeSource,
    TextFormatter,
)
from liquid_jax.data.skips import SkipCounter, SkipPolicy
from liquid_jax.data.sources.specs import ConcatSource, open_code_source, open_text_source
from liquid_jax.data.tokenizers.base import TextTokenizer, vocab_layout
from liquid_jax.data.vocab import VocabLayout
from liquid_jax.errors import ConfigError, InputError
from liquid_jax.parallel import host_local_to_global

__all__ = [
    "LiquidIterator",
    "PipelineConfig",
    "make_dataset",
    "make_iterator",
    "resolve_layout",
    "shapes_config",
    "to_global_batch",
]


def _worker_init(worker_index: int, worker_count: int) -> None:
    """Runs first in each Grain worker process (spawned, so nothing is inherited)."""
    del worker_index, worker_count
    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()  # absl-reading libraries fail on unparsed flags


def _stream_seed(seed: int, stream: int) -> int:
    return int(np.random.SeedSequence([seed, stream]).generate_state(1)[0])


def _stream(sources: Sequence, formatter, cfg: PipelineConfig) -> grain.MapDataset:
    source = SafeSource(sources[0] if len(sources) == 1 else ConcatSource(sources))
    if len(source) == 0:
        raise InputError(f"data source {source.name} is empty")
    ds = grain.MapDataset.source(source).map_with_index(formatter)
    ds = ds.shuffle(seed=_stream_seed(cfg.seed, formatter.stream))
    return ds.repeat(cfg.num_epochs)


def resolve_layout(cfg: PipelineConfig, tokenizer: TextTokenizer, code_sources=()) -> VocabLayout:
    """The vocabulary layout: ``cfg.num_image_codes``, else the first code source's
    ``num_codes``, else (text only) no image codes."""
    num_codes = cfg.num_image_codes
    if num_codes is None:
        num_codes = next((s.num_codes for s in code_sources if hasattr(s, "num_codes")), None)
    if num_codes is None and not code_sources:
        num_codes = 0
    if num_codes is None:
        raise ConfigError("data: set num_image_codes (the VQGAN codebook size) in the data config")
    return vocab_layout(tokenizer, int(num_codes))


def make_dataset(
    cfg: PipelineConfig,
    tokenizer: TextTokenizer,
    layout: VocabLayout | None = None,
    *,
    text_sources: Sequence | None = None,
    image_text_sources: Sequence | None = None,
    process_index: int | None = None,
    process_count: int | None = None,
) -> grain.IterDataset:
    """The Grain dataset of this host's batches (see the module docstring).

    ``text_sources``/``image_text_sources`` (source objects) replace the config's specs;
    process index/count default to JAX's. Batches carry an extra ``_skips`` entry that
    ``LiquidIterator`` removes.
    """
    if process_index is None or process_count is None:
        process_index, process_count = jax.process_index(), jax.process_count()
    if cfg.batch_size % process_count:
        raise ConfigError(
            f"data: batch_size {cfg.batch_size} does not divide over {process_count} hosts"
        )
    if text_sources is None:
        text_sources = [open_text_source(s) for s in cfg.text_sources]
    if image_text_sources is None:
        image_text_sources = [open_code_source(s) for s in cfg.image_text_sources]
    layout = layout or resolve_layout(cfg, tokenizer, image_text_sources)
    options = FormatOptions(
        seq_len=cfg.seq_len,
        seed=cfg.seed,
        t2i_fraction=cfg.t2i_fraction,
        cfg_dropout=cfg.cfg_dropout,
        text_overflow=cfg.text_overflow,
        multires=cfg.multires,
        downsample=cfg.downsample,
    )
    streams, weights = [], []
    for sources, weight, formatter in (
        (text_sources, cfg.text_weight, TextFormatter(tokenizer, layout, options)),
        (image_text_sources, cfg.image_text_weight, ImageTextFormatter(tokenizer, layout, options)),
    ):
        if sources and weight > 0:
            streams.append(_stream(sources, formatter, cfg))
            weights.append(float(weight))
    if not streams:
        raise ConfigError(
            "data: no sources with a positive weight (text_sources, image_text_sources)"
        )
    ds = streams[0] if len(streams) == 1 else grain.MapDataset.mix(streams, weights)
    ds = ds[process_index::process_count]
    ds = ds.to_iter_dataset(
        grain.ReadOptions(num_threads=cfg.read_threads, prefetch_buffer_size=cfg.read_buffer)
    )
    flatten = FlattenExamples(ds, name=f"data (host {process_index})")
    host_batch = cfg.batch_size // process_count
    ds = pack(flatten, cfg.seq_len, cfg.num_packing_bins or host_batch, layout.pad_id)
    ds = AttachSkips(ds.batch(host_batch, drop_remainder=True), flatten)
    if cfg.num_workers > 0:
        ds = ds.mp_prefetch(
            grain.MultiprocessingOptions(
                num_workers=cfg.num_workers, per_worker_buffer_size=cfg.worker_buffer_size
            ),
            worker_init_fn=_worker_init,
        )
    return ds


def _jsonable(tree):
    """Grain states hold numpy scalars in places; JSON round trip makes them plain."""

    def default(x):
        if isinstance(x, np.generic):
            return x.item()
        raise TypeError(f"data iterator state holds a {type(x).__name__}, not JSON-able")

    return json.loads(json.dumps(tree, default=default))


class LiquidIterator:
    """Iterator of host batches with JSON-able state and skip accounting.

    ``next(it)`` -> ``{tokens, loss_mask, segment_ids, positions, task}``, each
    ``int32[batch_size / hosts, seq_len]`` (see ``packing`` for their meaning). Raises
    ``skips.TooManySkipsError`` when the skip thresholds are exceeded.
    """

    def __init__(self, dataset: grain.IterDataset, cfg: PipelineConfig, fingerprint: dict):
        self.cfg = cfg
        self.policy = SkipPolicy(cfg.max_skip_fraction, cfg.max_skips, cfg.min_records_for_fraction)
        self._fingerprint = fingerprint
        self._it = iter(dataset)
        self._worker_skips: dict[str, dict] = {}
        self._finished = False  # exhausted, summary logged
        self._summarised = False  # summary logged by close()

    def __iter__(self) -> LiquidIterator:
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        try:
            batch = next(self._it)
        except StopIteration:
            if not self._finished:
                self._finished = True
                counter = self.skips()
                counter.log_summary()
                counter.check(final=True)
            raise
        self._summarised = False
        info = batch.pop(SKIPS_KEY)
        if info["state"] is not None:
            self._worker_skips[str(info["worker"])] = info["state"]
        self.skips().check()
        return batch

    def skips(self) -> SkipCounter:
        """All workers' skip counts (as of the batches returned so far) in one counter."""
        return SkipCounter.merged(self._worker_skips.values(), "data", self.policy)

    def get_state(self) -> dict:
        return _jsonable(
            {
                "grain": self._it.get_state(),
                "skips": self._worker_skips,
                "config": self._fingerprint,
            }
        )

    def set_state(self, state: dict) -> None:
        saved = state.get("config", {})
        changed = {k: (saved.get(k), v) for k, v in self._fingerprint.items() if saved.get(k) != v}
        if changed:
            raise ConfigError(
                "data iterator state was saved with other settings (saved, now): "
                f"{changed}; the position cannot be restored exactly"
            )
        self._it.set_state(state["grain"])
        self._worker_skips = {k: dict(v) for k, v in state["skips"].items()}
        self._finished = False

    def close(self) -> None:
        """Logs the skip summary and stops worker processes (these also stop at garbage
        collection, without the summary)."""
        if self._worker_skips and not (self._finished or self._summarised):
            self.skips().log_summary()
            self._summarised = True
        close = getattr(self._it, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> LiquidIterator:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def make_iterator(
    cfg: PipelineConfig,
    tokenizer: TextTokenizer,
    layout: VocabLayout | None = None,
    **kwargs,
) -> LiquidIterator:
    """A fresh iterator over ``make_dataset(cfg, tokenizer, layout, **kwargs)``."""
    process_index, process_count = kwargs.get("process_index"), kwargs.get("process_count")
    if process_index is None or process_count is None:
        kwargs["process_index"], kwargs["process_count"] = jax.process_index(), jax.process_count()
    dataset = make_dataset(cfg, tokenizer, layout, **kwargs)
    fingerprint = {
        key: getattr(cfg, key)
        for key in (
            "seq_len",
            "batch_size",
            "seed",
            "num_workers",
            "num_packing_bins",
            "text_weight",
            "image_text_weight",
            "num_epochs",
        )
    }
    fingerprint.update(
        sources=list(cfg.text_sources) + list(cfg.image_text_sources),
        process_index=kwargs["process_index"],
        process_count=kwargs["process_count"],
    )
    logging.info("data pipeline: %s", cfg)
    return LiquidIterator(dataset, cfg, _jsonable(fingerprint))


def to_global_batch(batch: dict[str, np.ndarray], mesh):
    """This host's batch -> global ``jax.Array``s sharded over the mesh's batch axes."""
    return host_local_to_global(batch, mesh)
