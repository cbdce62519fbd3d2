"""Liquid sequence formats: exact tokens and masks, CFG dropout, mixing, length handling."""

from collections import Counter

import numpy as np
import pytest

from liquid_jax.data.formats import (
    CAPTION_PROMPT,
    T2I_INSTRUCTIONS,
    TASK_I2T,
    TASK_T2I,
    TASK_TEXT,
    TASK_VQA,
    fit_to_length,
    i2t_example,
    t2i_example,
    t2i_prompt,
    text_example,
    vqa_example,
)
from liquid_jax.data.pipeline.mixing import image_text_example
from liquid_jax.data.tokenizers.base import vocab_layout
from liquid_jax.data.tokenizers.load import load_tokenizer

CODES = np.array([[5, 6], [7, 8]])  # a 2x2 grid, raster order 5 6 7 8
NUM_CODES = 16
PAD, EOS, BOS, BOI, EOI, UNCOND, SOT, EOT = range(8)


@pytest.fixture
def char(char_tokenizer):
    return char_tokenizer, vocab_layout(char_tokenizer, NUM_CODES)


def _c(tok, text):
    return tok.encode(text)


def _img(tok):
    v = tok.vocab_size
    return [v + 5, v + 6, v + 7, v + 8]


def _check(example, tokens, loss_on, task):
    np.testing.assert_array_equal(example["tokens"], tokens)
    np.testing.assert_array_equal(example["loss_mask"], loss_on)
    assert example["tokens"].dtype == np.int32 and example["loss_mask"].dtype == np.int32
    assert example["task"].shape == () and int(example["task"]) == task


def test_t2i_exact(char):
    tok, layout = char
    ex = t2i_example(tok, layout, "a red dot", CODES, np.random.default_rng(0), cfg_dropout=0.0)
    # The generator's first draw picks the instruction (documented order).
    instruction = T2I_INSTRUCTIONS[np.random.default_rng(0).integers(10)]
    prompt = [BOS, *_c(tok, "a red dot" + instruction), BOI]
    _check(
        ex,
        prompt + _img(tok) + [EOI, EOS],
        [0] * len(prompt) + [1, 1, 1, 1, 1, 1],  # codes, <eoi>, <eos>
        TASK_T2I,
    )


def test_t2i_unconditional_and_multires_exact(char):
    tok, layout = char
    ex = t2i_example(tok, layout, "a red dot", CODES, np.random.default_rng(0), cfg_dropout=1.0)
    _check(ex, [BOS, UNCOND, BOI, *_img(tok), EOI, EOS], [0, 0, 0, 1, 1, 1, 1, 1, 1], TASK_T2I)

    codes = np.arange(6).reshape(2, 3)  # 48 px wide, 32 px high -> 2 rows of 3 codes
    size = "Image Size: Width is 48 Height is 32."
    ex = t2i_example(tok, layout, "dot", codes, np.random.default_rng(0), image_size=(48, 32))
    instruction = T2I_INSTRUCTIONS[np.random.default_rng(0).integers(10)]
    prompt = [BOS, *_c(tok, "dot" + size + instruction), BOI]  # as the reference code does
    image = [tok.vocab_size + c for c in range(6)]
    _check(ex, prompt + image + [EOI, EOS], [0] * len(prompt) + [1] * 8, TASK_T2I)
    ex = t2i_example(
        tok, layout, "dot", codes, np.random.default_rng(0), cfg_dropout=1.0, image_size=(48, 32)
    )
    prompt = [BOS, *_c(tok, size + " "), UNCOND, BOI]
    _check(ex, prompt + image + [EOI, EOS], [0] * len(prompt) + [1] * 8, TASK_T2I)
    with pytest.raises(ValueError, match="grid"):
        t2i_example(tok, layout, "dot", CODES, np.random.default_rng(0), image_size=(48, 32))


def test_i2t_exact(char):
    tok, layout = char
    ex = i2t_example(tok, layout, "a red dot", CODES)
    prompt = [BOS, BOI, *_img(tok), EOI, *_c(tok, CAPTION_PROMPT)]
    caption = _c(tok, "a red dot")
    _check(
        ex,
        prompt + caption + [EOS],
        [0] * len(prompt) + [1] * (len(caption) + 1),
        TASK_I2T,
    )


def test_vqa_exact(char):
    tok, layout = char
    ex = vqa_example(tok, layout, "color?", "red", CODES)
    prompt = [BOS, SOT, *_c(tok, "user\n"), BOI, *_img(tok), EOI, *_c(tok, "\ncolor?"), EOT]
    prompt += [*_c(tok, "\n"), SOT, *_c(tok, "model\n")]
    _check(ex, prompt + _c(tok, "red") + [EOT], [0] * len(prompt) + [1, 1, 1, 1], TASK_VQA)


def test_text_exact(char):
    tok, layout = char
    ex = text_example(tok, layout, "hi there")
    _check(ex, [BOS, *_c(tok, "hi there"), EOS], [0] + [1] * 9, TASK_TEXT)


def test_formats_with_trained_sentencepiece(sp_dir):
    tok = load_tokenizer(sp_dir)
    layout = vocab_layout(tok, NUM_CODES)
    caption = "A small red circle above a large blue square."
    ex = i2t_example(tok, layout, caption, CODES)
    target = ex["tokens"][ex["loss_mask"] == 1]
    assert target[-1] == tok.eos_id and tok.decode(target) == caption
    assert layout.codes_of(ex["tokens"][2:6]).tolist() == [5, 6, 7, 8]
    ex = t2i_example(tok, layout, caption, CODES, np.random.default_rng(1), cfg_dropout=0.0)
    prompt = ex["tokens"][ex["loss_mask"] == 0]
    assert prompt[0] == tok.bos_id and prompt[-1] == tok.boi_id
    assert tok.decode(prompt[1:-1]) in [caption + i for i in T2I_INSTRUCTIONS]
    # The sampler's prompt is the example's prefix.
    sample_prompt = t2i_prompt(
        tok, layout, caption, instruction=tok.decode(prompt[1:-1])[len(caption) :]
    )
    np.testing.assert_array_equal(sample_prompt, prompt)


def test_cfg_dropout_rate_and_all_instructions(char):
    tok, layout = char
    rng = np.random.default_rng(123)
    n, dropped, seen = 10000, 0, Counter()
    for _ in range(n):
        ex = t2i_example(tok, layout, "x", CODES, rng)
        if ex["tokens"][1] == UNCOND:
            dropped += 1
        else:
            text = tok.decode(ex["tokens"][2 : int(np.argmax(ex["tokens"] == BOI))])
            seen[text] += 1
    assert abs(dropped / n - 0.1) < 0.01
    assert set(seen) == set(T2I_INSTRUCTIONS)
    assert min(seen.values()) > 0.6 * (n - dropped) / 10  # roughly uniform


def test_determinism(char):
    tok, layout = char
    a = [image_text_example(tok, layout, "x", CODES, np.random.default_rng(s)) for s in range(50)]
    b = [image_text_example(tok, layout, "x", CODES, np.random.default_rng(s)) for s in range(50)]
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x["tokens"], y["tokens"])


def test_task_mixing(char):
    tok, layout = char
    rng = np.random.default_rng(7)
    tasks = Counter(
        int(image_text_example(tok, layout, "x", CODES, rng)["task"]) for _ in range(4000)
    )
    assert set(tasks) == {TASK_T2I, TASK_I2T}
    assert abs(tasks[TASK_T2I] / 4000 - 0.8) < 0.03
    only_i2t = image_text_example(tok, layout, "x", CODES, rng, t2i_fraction=0.0)
    assert int(only_i2t["task"]) == TASK_I2T


def test_oversize_image_examples_are_dropped_not_truncated(char):
    tok, layout = char
    codes = np.arange(16).reshape(4, 4)
    drops = Counter()
    t2i = t2i_example(tok, layout, "a dot", codes, np.random.default_rng(0), cfg_dropout=1.0)
    assert len(t2i["tokens"]) == 21
    assert fit_to_length(t2i, 21, drops) == [t2i]
    assert fit_to_length(t2i, 20, drops) == []  # would cut only <eos>: still dropped
    i2t = i2t_example(tok, layout, "a dot", codes)
    assert fit_to_length(i2t, 10, drops) == []
    vqa = vqa_example(tok, layout, "q", "a", codes)
    assert fit_to_length(vqa, 10, drops) == []
    assert drops == Counter(too_long_t2i=1, too_long_i2t=1, too_long_vqa=1)


def test_long_text_is_split_into_windows(char):
    tok, layout = char
    ex = text_example(tok, layout, "abcdefghijklmnopqrstuvwxyz")  # 28 tokens
    chunks = fit_to_length(ex, 10)
    assert all(len(c["tokens"]) <= 10 and c["loss_mask"][0] == 0 for c in chunks)
    # Windows overlap by one token: each target token is predicted exactly once.
    targets = np.concatenate([c["tokens"][c["loss_mask"] == 1] for c in chunks])
    np.testing.assert_array_equal(targets, ex["tokens"][1:])
    first = fit_to_length(ex, 10, text_overflow="truncate")
    assert len(first) == 1 and first[0]["tokens"].tolist() == ex["tokens"][:10].tolist()
