"""``evals.text_ppl.perplexity`` against NumPy: each document alone, unpadded, scored
as ``<bos>{text}<eos>`` with a log-softmax over the layout's vocabulary only.

The model's table is padded past ``layout.vocab_size`` and its padding rows get large
logits here, so a softmax over the padded table would be far off. Three documents in
batches of two leave a padding row; one document is longer than ``max_len``.

Mutations tried (each fails the test):
- softmax over the whole padded table (``[:, :-1, :vocab]`` -> ``[:, :-1]``);
- the mask not shifted with the targets (``mask[:, :-1]``);
- padding counted as targets (the mask set to 1 past each document).
"""

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from liquid_jax.data.vocab import VocabLayout
from liquid_jax.evals.text_ppl import perplexity
from liquid_jax.models import Transformer
from tests.tiny import tiny_spec

LAYOUT = VocabLayout(text_vocab_size=40, num_image_codes=8, boi_id=3, eoi_id=4,
                     unconditional_id=5, bos_id=2, eos_id=1, pad_id=0)  # fmt: skip
MAX_LEN = 16


class LetterTokenizer:
    """One id per lower-case letter (10 + index), spaces ignored."""

    def encode(self, text):
        return [10 + ord(c) - ord("a") for c in text if c != " "]


@pytest.fixture(scope="module")
def model():
    spec = tiny_spec("llama", vocab_size=64, hidden_size=32, intermediate_size=64, head_dim=8)
    m = nnx.jit(lambda: Transformer(spec, rngs=nnx.Rngs(0)))()  # one compile, not many ops
    # Padding columns of the LM head that would dominate a softmax over the whole table.
    head = m.lm_head.kernel
    head[...] = head[...].at[:, LAYOUT.vocab_size :].multiply(20.0)
    return m


def _reference(model, texts):
    forward = nnx.jit(lambda m, t: m(t))
    total, count = 0.0, 0
    for text in texts:
        seq = [LAYOUT.bos_id, *LetterTokenizer().encode(text), LAYOUT.eos_id][:MAX_LEN]
        logits = np.asarray(forward(model, jnp.asarray([seq], jnp.int32)), np.float64)[0]
        logits = logits[:-1, : LAYOUT.vocab_size]
        top = logits.max(-1, keepdims=True)
        logp = logits - top - np.log(np.exp(logits - top).sum(-1, keepdims=True))
        total -= logp[np.arange(len(seq) - 1), seq[1:]].sum()
        count += len(seq) - 1
    return total / count, count


def test_perplexity_matches_numpy(model):
    texts = ["abc", "hello there", "the quick brown fox jumps over it"]
    nll, count = _reference(model, texts)
    got = perplexity(model, LetterTokenizer(), LAYOUT, texts, batch_size=2, max_len=MAX_LEN)
    assert got["tokens"] == count == 4 + 11 + (MAX_LEN - 1)
    assert got["nll"] == pytest.approx(nll, rel=1e-5)
    assert got["ppl"] == pytest.approx(np.exp(nll), rel=1e-5)
