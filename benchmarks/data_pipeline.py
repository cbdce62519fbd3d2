"""Throughput of the LLM data pipeline (format + pack + batch) on the demo-sized setup.

    python benchmarks/data_pipeline.py                       # 0 and 2 worker processes
    python benchmarks/data_pipeline.py --workers=0,4 --seq_len=256 --batch_size=16

Shapes-world text and stand-in codes (no prepared data), a 400-piece SentencePiece
tokenizer trained on the fly. Two kinds of source: ``generate`` renders every scene
when it is read (most of the time goes there), ``memory`` reads 4000 records made
beforehand (so the figure is the pipeline's own: tokenise, format, pack, batch).
Prints, per source kind and worker count: batches/s, tokens/s (all ``B * L`` slots),
real tokens/s (segment id > 0) and the packing fill. The first ``--warmup`` batches
(worker start-up) are not timed.
"""

from __future__ import annotations

import tempfile
import time

from absl import app, flags

from liquid_jax.data.pipeline.dataset import make_iterator, shapes_config
from liquid_jax.data.shapes.examples import text_record
from liquid_jax.data.sources.shapes import ShapesCodeSource, ShapesTextSource
from liquid_jax.data.tokenizers.load import load_tokenizer
from liquid_jax.data.tokenizers.sp_train import train_sentencepiece

_WORKERS = flags.DEFINE_list("workers", ["0", "2"], "Grain worker process counts to time.")
_SEQ_LEN = flags.DEFINE_integer("seq_len", 512, "Tokens per packed row.")
_BATCH = flags.DEFINE_integer("batch_size", 32, "Rows per batch.")
_BATCHES = flags.DEFINE_integer("batches", 60, "Timed batches per setting.")
_WARMUP = flags.DEFINE_integer("warmup", 5, "Untimed batches first.")
_SOURCES = flags.DEFINE_list("sources", ["generate", "memory"], "Source kinds to time.")
_MEMORY_RECORDS = 4000


def _tokenizer(directory: str):
    docs = [text_record(0, "train", i)["text"] for i in range(1500)]
    train_sentencepiece(docs, 400, directory)
    return load_tokenizer(directory)


def _memory_sources() -> dict:
    """Records made up front: plain lists are random-access sources too."""
    images, text = ShapesCodeSource(_MEMORY_RECORDS), ShapesTextSource(_MEMORY_RECORDS)
    return dict(
        text_sources=[[text[i] for i in range(len(text))]],
        image_text_sources=[[images[i] for i in range(len(images))]],
    )


def _time(tokenizer, kind: str, workers: int, sources: dict) -> None:
    cfg = shapes_config(
        seq_len=_SEQ_LEN.value,
        batch_size=_BATCH.value,
        num_packing_bins=_BATCH.value,
        num_workers=workers,
        text_sources=("shapes_text:100000",),
        image_text_sources=("shapes:100000",),
        num_image_codes=64,  # stand-in codes, 4 levels per channel
    )
    with make_iterator(cfg, tokenizer, process_index=0, process_count=1, **sources) as it:
        for _ in range(_WARMUP.value):
            next(it)
        start, real = time.perf_counter(), 0
        for _ in range(_BATCHES.value):
            real += int((next(it)["segment_ids"] > 0).sum())
        seconds = time.perf_counter() - start
    slots = _BATCHES.value * cfg.batch_size * cfg.seq_len
    print(
        f"{kind:8s} workers={workers} seq_len={cfg.seq_len} batch={cfg.batch_size}: "
        f"{_BATCHES.value / seconds:.1f} batches/s, {slots / seconds:,.0f} tokens/s, "
        f"{real / seconds:,.0f} real tokens/s, fill {real / slots:.1%}",
        flush=True,
    )


def main(argv):
    del argv
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = _tokenizer(tmp)
    for kind in _SOURCES.value:
        sources = _memory_sources() if kind == "memory" else {}
        for workers in map(int, _WORKERS.value):
            _time(tokenizer, kind, workers, sources)


if __name__ == "__main__":
    app.run(main)
