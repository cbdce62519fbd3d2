"""Teacher-forced scores: the summed next-token loss of chosen tokens of each sequence.

Perplexity (``text_ppl``) and caption use (``caption_use``) both score this way. Rows
are padded to one length (a multiple of 8) and batched, so one compiled forward pass per
model and length serves every batch; the softmax runs over the model's real vocabulary.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from liquid_jax.models.loss import token_nll


@functools.lru_cache(maxsize=4)
def _row_sums_fn(graphdef, vocab: int):
    """Jitted ``(state, tokens int32[B, L], mask float32[B, L]) -> (nll, targets)``, each
    float32[B]: per row the summed loss of the masked tokens and their number."""

    @jax.jit
    def row_sums(state, tokens, mask):
        logits = nnx.merge(graphdef, state)(tokens)[:, :-1, :vocab]
        weight = mask[:, 1:]
        return (token_nll(logits, tokens[:, 1:]) * weight).sum(axis=1), weight.sum(axis=1)

    return row_sums


def score_sequences(
    model,
    sequences: Sequence[np.ndarray],
    targets: Sequence[np.ndarray],
    *,
    vocab_size: int,
    pad_id: int,
    batch_size: int = 32,
    max_len: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Per sequence, the summed loss (nats) of its target tokens and their number.

    sequences: N int arrays of token ids; targets: N arrays of the same lengths, 1 where
    the token is scored (predicted from the ones before it; a first token never is).
    Sequences longer than ``max_len`` are cut. Returns (nll float64[N], count float64[N]).
    """
    length = -(-max(len(s) for s in sequences) // 8) * 8
    if max_len is not None:
        length = min(max_len, length)
    graphdef, state = nnx.split(model)
    row_sums = _row_sums_fn(graphdef, vocab_size)
    nll, count = [], []
    for start in range(0, len(sequences), batch_size):
        part = range(start, min(start + batch_size, len(sequences)))
        tokens = np.full((batch_size, length), pad_id, np.int32)
        mask = np.zeros((batch_size, length), np.float32)
        for row, i in enumerate(part):
            n = min(len(sequences[i]), length)
            tokens[row, :n], mask[row, :n] = sequences[i][:n], targets[i][:n]
        s, w = row_sums(state, jnp.asarray(tokens), jnp.asarray(mask))
        nll.append(np.asarray(s, np.float64)[: len(part)])
        count.append(np.asarray(w, np.float64)[: len(part)])
    return np.concatenate(nll), np.concatenate(count)
