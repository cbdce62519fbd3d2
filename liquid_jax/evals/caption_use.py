"""Which words of a caption a T2I model listens to: teacher-forced code loss under edits.

For held-out (caption, codes) pairs, the loss of the image codes given the T2I prompt is
summed over the grid (nats per image) with the true caption, with one class of attribute
words replaced by another word of its class (colour, shape kind, size, position), and
with another image's caption. ``edited - true`` is what the model takes from that
attribute: up to about log 8 = 2.1 nats for the colour of one shape that it fully uses,
0 for a word it ignores. Sampling can only carry what teacher forcing shows, so this
tells "the model ignores the colour word" apart from "the sampler loses the colour".

    use = caption_use(model, layout, tokenizer, captions, codes)
    # {"true": 38.1, "shuffled": 52.0, "caption": 13.9, "color": 4.6, "shape": 0.6, ...}
"""

from __future__ import annotations

import numpy as np

from liquid_jax.data.formats import t2i_prompt
from liquid_jax.data.shapes.captions import POSITION_PHRASES
from liquid_jax.data.shapes.scene import COLORS, SHAPES, SIZES
from liquid_jax.data.tokenizers.base import TextTokenizer
from liquid_jax.data.vocab import VocabLayout
from liquid_jax.evals.teacher_forced import score_sequences

# Words of one class replace each other; relations ("above", "left of") count as position.
WORD_CLASSES = {
    "color": tuple(COLORS),
    "shape": SHAPES,
    "size": tuple(SIZES),
    "position": (*POSITION_PHRASES, "above", "below"),
}


def swap_words(caption: str, words: tuple[str, ...], rng: np.random.Generator) -> str:
    """``caption`` with every word from ``words`` replaced by a different one of them."""
    out = []
    for word in caption.split(" "):
        if word in words:
            word = str(rng.choice([w for w in words if w != word]))
        out.append(word)
    return " ".join(out)


def code_loss(
    model,
    layout: VocabLayout,
    tokenizer: TextTokenizer,
    captions: list[str],
    codes: np.ndarray,
    *,
    batch_size: int = 32,
) -> float:
    """Mean over images of the summed next-token loss (nats) of ``codes: int[N, h, w]``
    after each caption's T2I prompt (the first instruction phrasing)."""
    prompts = [t2i_prompt(tokenizer, layout, c) for c in captions]
    images = layout.image_tokens(np.asarray(codes).reshape(len(captions), -1))
    sequences = [np.concatenate([p, im]) for p, im in zip(prompts, images)]
    scored = [
        np.concatenate([np.zeros(len(p)), np.ones(len(im))]) for p, im in zip(prompts, images)
    ]
    nll, _ = score_sequences(model, sequences, scored, vocab_size=layout.vocab_size,
                             pad_id=layout.pad_id, batch_size=batch_size)  # fmt: skip
    return float(nll.mean())


def caption_use(
    model,
    layout: VocabLayout,
    tokenizer: TextTokenizer,
    captions: list[str],
    codes: np.ndarray,
    *,
    seed: int = 0,
) -> dict[str, float]:
    """``{"true", "shuffled"}``: code loss in nats per image with the true captions and
    with the captions of other images; ``"caption"``: their difference; and per word
    class (``WORD_CLASSES``) the loss added by swapping that class's words."""
    rng = np.random.default_rng(seed)

    def loss(caps: list[str]) -> float:
        return code_loss(model, layout, tokenizer, caps, codes)

    true = loss(captions)
    shuffled = loss([captions[i] for i in np.roll(np.arange(len(captions)), 1)])
    out = {"true": true, "shuffled": shuffled, "caption": shuffled - true}
    for name, words in WORD_CLASSES.items():
        out[name] = loss([swap_words(c, words, rng) for c in captions]) - true
    return out
