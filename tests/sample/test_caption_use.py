"""evals.caption_use on tiny word-level models: the loss against NumPy, and what each
class of attribute words is worth."""

import numpy as np
import pytest
from flax import nnx

import liquid_jax.evals.caption_use as caption_use_lib
from liquid_jax.data.formats import t2i_prompt
from liquid_jax.data.tokenizers.base import vocab_layout
from liquid_jax.data.tokenizers.load import load_tokenizer
from liquid_jax.evals.caption_use import WORD_CLASSES, caption_use, code_loss, swap_words
from liquid_jax.models.transformer import Transformer
from tests.tiny import NUM_CODES, sampling_spec, save_sampling_tokenizer


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


# A tokenizer that knows the attribute words, so that swapping one changes the tokens.
ATTRIBUTE_WORDS = sorted({w for words in WORD_CLASSES.values() for w in words})
WORDS = ATTRIBUTE_WORDS + ["a", "on", "the", "at", "in", "of", "to", "is"]
CAPTIONS = [
    "a small red circle on the left",
    "a large blue star above a small green cross",
    "a large yellow square at the top",
    "a small cyan triangle to the left of a large red diamond",
    "a small purple cross in the center",
    "a large green circle below a small orange star",
]


@pytest.fixture(scope="module")
def worded(tmp_path_factory):
    """(model, layout, tokenizer) over a word-level vocabulary of caption words."""
    directory = str(tmp_path_factory.mktemp("attribute_tokenizer"))
    save_sampling_tokenizer(directory, WORDS)
    tokenizer = load_tokenizer(directory)
    layout = vocab_layout(tokenizer, NUM_CODES)
    spec = sampling_spec(vocab_size=layout.vocab_size)
    model = nnx.jit(lambda: Transformer(spec, rngs=nnx.Rngs(3)))()
    return model, layout, tokenizer


def test_caption_use_against_numpy_on_attribute_words(worded, monkeypatch):
    """Every number is the NumPy loss of the captions actually scored minus that of the
    true ones, and each word class's edit changes exactly that class's words (all of
    them); a random model reads every word, so no class scores 0.

    Mutations tried (on an in-memory copy of ``evals/caption_use.py``): an edit scored
    against the shuffled loss (``... - shuffled``), "shuffled" without a shift
    (``np.roll(..., 0)``), every class swapping colour words
    (``swap_words(c, WORD_CLASSES["color"], rng)``): each fails this test."""
    model, layout, tokenizer = worded
    for c in CAPTIONS:  # no <unk>: every word is its own token
        assert tokenizer.token_to_id("<unk>") not in tokenizer.encode(c)
    codes = np.random.default_rng(4).integers(0, NUM_CODES, (len(CAPTIONS), 4, 4))
    edits = []
    real_swap = caption_use_lib.swap_words

    def spy(caption, words, rng):
        edits.append(real_swap(caption, words, rng))
        return edits[-1]

    monkeypatch.setattr(caption_use_lib, "swap_words", spy)
    use = caption_use(model, layout, tokenizer, CAPTIONS, codes)

    def mean_loss(captions):
        return np.mean(
            [_reference_loss(model, layout, tokenizer, c, x) for c, x in zip(captions, codes)]
        )

    true = mean_loss(CAPTIONS)
    assert use["true"] == pytest.approx(true, rel=1e-4)
    shuffled = mean_loss(CAPTIONS[-1:] + CAPTIONS[:-1])  # each image, the previous caption
    assert use["shuffled"] == pytest.approx(shuffled, rel=1e-4)
    assert use["caption"] == pytest.approx(shuffled - true, rel=1e-3)
    n = len(CAPTIONS)
    assert len(edits) == n * len(WORD_CLASSES)
    for k, (name, words) in enumerate(WORD_CLASSES.items()):
        edited = edits[k * n : (k + 1) * n]
        for before, after in zip(CAPTIONS, edited):
            pairs = list(zip(before.split(), after.split(), strict=True))
            assert any(b in words for b, _ in pairs), (name, before)
            for b, a in pairs:
                assert (a != b) if b in words else (a == b), (name, before, after)
        want = mean_loss(edited) - true
        assert use[name] == pytest.approx(want, rel=1e-3, abs=1e-3), name
        assert abs(use[name]) > 0.01, name
