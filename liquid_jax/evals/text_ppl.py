"""Perplexity of a language model on held-out text documents.

Each document is scored as it is trained, ``<bos>{text}<eos>`` with every token after
``<bos>`` a target (``formats.text_example``); documents are packed one per row, padded
to a fixed length so one compiled forward pass serves every batch. The softmax runs over
the model's real vocabulary (``layout.vocab_size``: text tokens, and image codes for a
Liquid model, whose share of the probability mass is part of its cost on text).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from liquid_jax.data.formats import text_example
from liquid_jax.data.tokenizer import TextTokenizer
from liquid_jax.data.vocab import VocabLayout
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
    longest = max(len(e["tokens"]) for e in examples)
    length = min(max_len, -(-longest // 8) * 8)
    graphdef, state = nnx.split(model)
    vocab = layout.vocab_size

    @jax.jit
    def nll_sums(state, tokens, mask):
        logits = nnx.merge(graphdef, state)(tokens)[:, :-1, :vocab].astype(jnp.float32)
        targets = tokens[:, 1:]
        log_z = jax.nn.logsumexp(logits, axis=-1)
        picked = jnp.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]
        weight = mask[:, 1:].astype(jnp.float32)
        return ((log_z - picked) * weight).sum(), weight.sum()

    total, count = 0.0, 0.0
    for start in range(0, len(examples), batch_size):
        chunk = examples[start : start + batch_size]
        tokens = np.full((batch_size, length), layout.pad_id, np.int32)
        mask = np.zeros((batch_size, length), np.int32)
        for row, ex in enumerate(chunk):
            n = min(len(ex["tokens"]), length)
            tokens[row, :n], mask[row, :n] = ex["tokens"][:n], ex["loss_mask"][:n]
        s, w = nll_sums(state, jnp.asarray(tokens), jnp.asarray(mask))
        total, count = total + float(s), count + float(w)
    nll = total / max(count, 1.0)
    return {"ppl": math.exp(nll), "nll": nll, "tokens": count}
