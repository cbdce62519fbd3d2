"""Perplexity of a language model on held-out text documents.

Each document is scored as it is trained, ``<bos>{text}<eos>`` with every token after
``<bos>`` a target (``formats.text_example``); documents are packed one per row, padded
to a fixed length (``teacher_forced.score_sequences``). The softmax runs over the model's
real vocabulary (``layout.vocab_size``: text tokens, and image codes for a
Liquid model, whose share of the probability mass is part of its cost on text).
"""

from __future__ import annotations

import math

from liquid_jax.data.formats import text_example
from liquid_jax.data.tokenizers.base import TextTokenizer
from liquid_jax.data.vocab import VocabLayout
from liquid_jax.evals.teacher_forced import score_sequences
from liquid_jax.models import Transformer


def perplexity(
    model: Transformer,
    tokenizer: TextTokenizer,
    layout: VocabLayout,
    texts: list[str],
    *,
    batch_size: int = 32,
    max_len: int = 128,
) -> dict[str, float]:
    """``{"ppl", "nll", "tokens"}``: exp of the mean next-token loss over all documents'
    target tokens (documents longer than ``max_len`` tokens are cut)."""
    examples = [text_example(tokenizer, layout, t) for t in texts]
    nll, count = score_sequences(
        model,
        [e["tokens"] for e in examples],
        [e["loss_mask"] for e in examples],
        vocab_size=layout.vocab_size,
        pad_id=layout.pad_id,
        batch_size=batch_size,
        max_len=max_len,
    )
    mean = float(nll.sum() / max(count.sum(), 1.0))
    return {"ppl": math.exp(mean), "nll": mean, "tokens": float(count.sum())}
