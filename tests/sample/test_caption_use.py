"""evals.caption_use on the tiny sampling assets (word-level captions w0..w30)."""

import numpy as np
import pytest
from sampling_tiny import NUM_CODES

from liquid_jax.data.formats import t2i_prompt
from liquid_jax.evals.caption_use import WORD_CLASSES, caption_use, code_loss, swap_words


def test_swap_words_replaces_each_word_of_the_class_by_another():
    rng = np.random.default_rng(0)
    caption = "a small red circle above a large red square on a dark background"
    for _ in range(20):
        out = swap_words(caption, WORD_CLASSES["color"], rng).split(" ")
        words = caption.split(" ")
        assert len(out) == len(words)
        for before, after in zip(words, out):
            if before in WORD_CLASSES["color"]:
                assert after in WORD_CLASSES["color"] and after != before
            else:
                assert after == before
    assert swap_words("a circle", WORD_CLASSES["color"], rng) == "a circle"


def _reference_loss(model, layout, tokenizer, caption, codes):
    """Summed code loss of one unpadded sequence, with NumPy's log-softmax."""
    prompt = t2i_prompt(tokenizer, layout, caption)
    seq = np.concatenate([prompt, layout.image_tokens(codes.reshape(-1))])
    logits = np.asarray(model(seq[None]), np.float64)[0, :-1, : layout.vocab_size]
    shifted = logits - logits.max(-1, keepdims=True)
    logp = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
    targets = seq[1:]
    picked = logp[np.arange(len(targets)), targets]
    return -picked[len(prompt) - 1 :].sum()


def test_code_loss_matches_an_unpadded_reference(assets):
    model, layout, tokenizer, _, _ = assets
    rng = np.random.default_rng(1)
    captions = ["w1 w2 w3", "w4", "w5 w6 w7 w8 w9"]
    codes = rng.integers(0, NUM_CODES, (3, 4, 4))
    expected = np.mean(
        [_reference_loss(model, layout, tokenizer, c, x) for c, x in zip(captions, codes)]
    )
    got = code_loss(model, layout, tokenizer, captions, codes, batch_size=2)
    np.testing.assert_allclose(got, expected, rtol=1e-4)


def test_caption_use_reports_differences_to_the_true_caption(assets):
    model, layout, tokenizer, _, _ = assets
    rng = np.random.default_rng(2)
    captions = [f"w{i} w{i + 1}" for i in range(6)]
    codes = rng.integers(0, NUM_CODES, (6, 4, 4))
    use = caption_use(model, layout, tokenizer, captions, codes)
    true = code_loss(model, layout, tokenizer, captions, codes)
    assert use["true"] == pytest.approx(true, rel=1e-5)
    assert use["caption"] == pytest.approx(use["shuffled"] - use["true"])
    assert use["shuffled"] != pytest.approx(use["true"])  # a random model still reads text
    # These captions hold no attribute words: swapping changes nothing.
    for name in WORD_CLASSES:
        assert use[name] == pytest.approx(0.0, abs=1e-6)
