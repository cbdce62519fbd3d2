"""The LLM data pipeline's settings, from the config's ``data`` section (a ConfigDict or
a dict).

The defaults here equal ``liquid_jax.config_utils.base_config().data`` field for field,
which is where config files take them from; tests/train/test_configs.py fails if the two
ever disagree. The data layer cannot import the config (it sits above), so the test is
what ties them.
"""

from __future__ import annotations

import dataclasses

from liquid_jax.data.formats import DOWNSAMPLE
from liquid_jax.data.pipeline.mixing import T2I_FRACTION
from liquid_jax.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    """Everything ``pipeline.make_iterator`` needs besides the tokenizer.

    Attributes:
      seq_len: tokens per packed row.
      batch_size: rows per *global* batch (each host loads ``batch_size / hosts``).
      seed: shuffling and per-record randomness.
      t2i_fraction: share of image-text records used as T2I (the rest are I2T).
      cfg_dropout: probability that a T2I caption becomes ``<unconditional>``.
      text_weight, image_text_weight: mixing weights of the two streams (by record).
      text_sources: specs of text sources (``sources.open_text_source``).
      image_text_sources: specs of code-record sources (``sources.open_code_source``).
      num_image_codes: codebook size; ``None``: the first code source's ``num_codes``.
      num_epochs: passes over each stream; ``None`` repeats forever.
      num_workers: Grain worker processes (0: everything in this process).
      worker_buffer_size: batches each worker prepares ahead.
      read_threads, read_buffer: threads and records read ahead per process.
      num_packing_bins: rows filled at once by the first-fit packer (0: the per-host
        batch size); more bins pack tighter but hold more examples in flight.
      text_overflow: ``"split"`` or ``"truncate"`` text longer than ``seq_len``.
      multires: add Liquid's "Image Size: ..." prompt (size = grid * downsample).
      downsample: pixels per code side (16 for Chameleon's VQGAN).
      max_skip_fraction, max_skips, min_records_for_fraction: ``skips.SkipPolicy``.
    """

    seq_len: int = 2048
    batch_size: int = 8
    seed: int = 0
    t2i_fraction: float = T2I_FRACTION
    cfg_dropout: float = 0.1
    text_weight: float = 1.0
    image_text_weight: float = 1.0
    text_sources: tuple[str, ...] = ()
    image_text_sources: tuple[str, ...] = ()
    num_image_codes: int | None = 8192
    num_epochs: int | None = None
    num_workers: int = 0
    worker_buffer_size: int = 2
    read_threads: int = 2
    read_buffer: int = 128
    num_packing_bins: int = 0
    text_overflow: str = "split"
    multires: bool = False
    downsample: int = DOWNSAMPLE
    max_skip_fraction: float | None = 0.1
    max_skips: int | None = None
    min_records_for_fraction: int = 1000

    def __post_init__(self):
        if self.seq_len < 2 or self.batch_size < 1:
            raise ConfigError(f"data: seq_len={self.seq_len}, batch_size={self.batch_size}")
        if self.num_workers < 0 or self.num_packing_bins < 0:
            raise ConfigError("data: num_workers and num_packing_bins must be >= 0")
        if not 0.0 <= self.cfg_dropout <= 1.0 or not 0.0 <= self.t2i_fraction <= 1.0:
            raise ConfigError("data: cfg_dropout and t2i_fraction must be probabilities")
        # ConfigDict gives lists; keep the dataclass hashable and immutable.
        object.__setattr__(self, "text_sources", tuple(self.text_sources))
        object.__setattr__(self, "image_text_sources", tuple(self.image_text_sources))

    @classmethod
    def from_config(cls, cfg, validation: bool = False) -> PipelineConfig:
        """From a ``data`` section (dict or ``ml_collections.ConfigDict``) holding any
        subset of the fields, and optionally ``validation``: the keys that differ for
        validation batches, applied over the rest when ``validation`` is true."""
        values = cfg.to_dict() if hasattr(cfg, "to_dict") else dict(cfg)
        overrides = values.pop("validation", None) or {}
        if validation:
            values.update(overrides)
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(values) - set(names))
        if unknown:
            raise ConfigError(f"data config: unknown keys {unknown}; valid keys are {names}")
        return cls(**values)

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["text_sources"] = list(self.text_sources)
        out["image_text_sources"] = list(self.image_text_sources)
        return out


def shapes_config(**overrides) -> PipelineConfig:
    """The demo-sized setup: shapes-world text and stand-in codes, no prepared data."""
    values = dict(
        seq_len=256,
        batch_size=16,
        text_sources=("shapes_text:4000",),
        image_text_sources=("shapes:4000",),
        num_packing_bins=16,
        num_image_codes=None,  # the stand-in source's codebook
        downsample=4,  # stand-in codes: a 32 px image is an 8x8 grid
        min_records_for_fraction=100,
    )
    values.update(overrides)
    return PipelineConfig(**values)
