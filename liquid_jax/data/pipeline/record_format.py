"""Source records -> Liquid examples, as the map step of the Grain pipeline.

Each call formats one record and returns an *item*::

    {"examples": list[Example],                 # 0, 1 or (split text) several
     "skips": list[(reason, record_id, detail)]}  # why nothing (or less) came out

so bad records and oversize examples travel down the pipeline as counted skips
instead of exceptions (``packing.FlattenExamples`` counts them). ``SafeSource`` turns a
source's ``BadRecord`` into such a skip.

Randomness: the generator of a record is ``default_rng([seed, stream, index])`` where
``index`` is the record's position in its repeated stream (``epoch * len + record``),
so the T2I/I2T choice, the instruction and the CFG dropout of a record are the same in
every run, on any number of hosts and workers, and differ between epochs.
"""

from __future__ import annotations

import dataclasses
from collections import Counter

import numpy as np

from liquid_jax.data.formats import DOWNSAMPLE, fit_to_length, text_example
from liquid_jax.data.pipeline.mixing import T2I_FRACTION, image_text_example
from liquid_jax.data.skips import BadRecord
from liquid_jax.data.tokenizers.base import TextTokenizer
from liquid_jax.data.vocab import VocabLayout

SKIP_KEY = "_skip"
TEXT_STREAM, IMAGE_TEXT_STREAM = 0, 1


class SafeSource:
    """A source whose bad records come back as ``{SKIP_KEY: (reason, id, detail)}``."""

    def __init__(self, source):
        self.source = source
        self.name = getattr(source, "name", type(source).__name__)

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int):
        try:
            return self.source[index]
        except BadRecord as e:
            return {SKIP_KEY: (e.reason, e.record_id, e.detail)}

    def __repr__(self) -> str:
        return f"SafeSource({self.source!r})"


@dataclasses.dataclass(frozen=True)
class FormatOptions:
    """How records become examples (see ``pipeline.PipelineConfig`` for the meaning)."""

    seq_len: int
    seed: int = 0
    t2i_fraction: float = T2I_FRACTION
    cfg_dropout: float = 0.1
    text_overflow: str = "split"
    multires: bool = False
    downsample: int = DOWNSAMPLE


def _skipped(reason: str, record_id: str, detail: str = "") -> dict:
    return {"examples": [], "skips": [(reason, str(record_id), detail)]}


class _Formatter:
    stream = -1

    def __init__(self, tokenizer: TextTokenizer, layout: VocabLayout, options: FormatOptions):
        self.tokenizer, self.layout, self.options = tokenizer, layout, options

    def rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.options.seed, self.stream, int(index)])

    def _fit(self, example, record_id: str) -> dict:
        drops: Counter = Counter()
        chunks = fit_to_length(
            example, self.options.seq_len, drops, text_overflow=self.options.text_overflow
        )
        skips = [
            (reason, record_id, f"{len(example['tokens'])} tokens > {self.options.seq_len}")
            for reason, n in drops.items()
            for _ in range(n)
        ]
        return {"examples": chunks, "skips": skips}


class TextFormatter(_Formatter):
    """``(index, {"id", "text"})`` -> item of text examples (split to ``seq_len``)."""

    stream = TEXT_STREAM

    def __call__(self, index: int, record: dict) -> dict:
        if SKIP_KEY in record:
            return _skipped(*record[SKIP_KEY])
        record_id = record.get("id", f"text:{index}")
        text = record.get("text")
        if not isinstance(text, str) or not text.strip():
            return _skipped("empty_text", record_id)
        example = text_example(self.tokenizer, self.layout, text)
        return self._fit(example, record_id)


class ImageTextFormatter(_Formatter):
    """``(index, CodeRecord)`` -> item with one T2I or I2T example (or a skip)."""

    stream = IMAGE_TEXT_STREAM

    def __call__(self, index: int, record: dict) -> dict:
        if SKIP_KEY in record:
            return _skipped(*record[SKIP_KEY])
        record_id = record.get("source_id", f"codes:{index}")
        caption = record.get("caption")
        if not isinstance(caption, str) or not caption.strip():
            return _skipped("empty_caption", record_id)
        codes = np.asarray(record["codes"])
        grid_h, grid_w = int(record["grid_h"]), int(record["grid_w"])
        if codes.size != grid_h * grid_w:
            return _skipped("bad_codes", record_id, f"{codes.size} codes, grid {grid_h}x{grid_w}")
        o = self.options
        size = (grid_w * o.downsample, grid_h * o.downsample) if o.multires else None
        try:
            example = image_text_example(
                self.tokenizer,
                self.layout,
                caption.strip(),
                codes.reshape(grid_h, grid_w),
                self.rng(index),
                t2i_fraction=o.t2i_fraction,
                cfg_dropout=o.cfg_dropout,
                image_size=size,
                downsample=o.downsample,
            )
        except ValueError as e:  # codes outside the codebook, grid mismatch
            return _skipped("bad_codes", record_id, str(e))
        return self._fit(example, record_id)
