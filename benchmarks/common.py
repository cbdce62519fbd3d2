"""Shared timing helper for the side-by-side benchmarks."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def time_call(fn: Callable[[], object], warmup: int = 2, repeats: int = 5) -> float:
    """Median wall seconds of ``fn()`` (which must block until its work is done)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def report(title: str, rows: list[tuple[str, float, str]], ours: str, peer: str) -> None:
    """rows: (name, seconds, unit note); prints times and the peer/ours speed ratio."""
    print(f"\n== {title}")
    for name, seconds, note in rows:
        print(f"  {name:<28s} {seconds * 1e3:10.1f} ms  {note}")
    t = dict((n, s) for n, s, _ in rows)
    print(f"  speed-up of {ours} over {peer}: {t[peer] / t[ours]:.2f}x")


def gemma_pair(vocab: int, hidden: int, layers: int, **config):
    """A random ``transformers.GemmaForCausalLM`` (float32, eval mode, seed 0) and our
    ``Transformer`` holding the same weights (through ``save_pretrained`` + ``load_hf``).

    Four heads of ``hidden // 4``, MLP ``4 * hidden``; ``config`` adds GemmaConfig fields.
    """
    import tempfile

    import torch
    import transformers

    from liquid_jax.export import load_hf

    cfg = transformers.GemmaConfig(
        vocab_size=vocab, hidden_size=hidden, intermediate_size=4 * hidden,
        num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=4,
        head_dim=hidden // 4, **config,
    )  # fmt: skip
    torch.manual_seed(0)
    hf = transformers.GemmaForCausalLM(cfg).float().eval()
    with tempfile.TemporaryDirectory() as d:
        hf.save_pretrained(d)
        return hf, load_hf(d)
