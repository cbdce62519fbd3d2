"""Liquid's training sequences as pure functions: text and image codes -> token ids + mask.

Every ``*_example`` returns an ``Example``::

    {"tokens": int32[L], "loss_mask": int32[L], "task": int32[]}

``loss_mask[i] == 1`` says token ``i`` is a prediction target, i.e. the loss at input
position ``i - 1`` (whose logits predict token ``i``) counts. The mask is aligned with
``tokens``, so a trainer shifts once: ``logits[:, :-1]`` vs ``tokens[:, 1:]`` weighted by
``loss_mask[:, 1:]``. ``loss_mask[0]`` is always 0: an example's first token has no
context (after packing it must not be predicted from the previous example).
``task`` is one of ``TASK_TEXT, TASK_T2I, TASK_I2T, TASK_VQA`` for the whole example
(a packer broadcasts it per token). Packing concatenates examples and records segment
ids; nothing here pads.

Sequences (``{codes}`` are image tokens ``text_vocab_size + code``, raster order):

- T2I  ``<bos>{caption}{instruction}<boi>{codes}<eoi><eos>``: loss on codes, <eoi>, <eos>.
  With probability ``cfg_dropout`` the caption and instruction become ``<unconditional>``.
  With ``image_size=(w, h)`` (multi-resolution) the text is
  ``{caption}Image Size: Width is {w} Height is {h}.{instruction}`` (or
  ``Image Size: ... {h}. <unconditional>`` when dropped), as the reference code does,
  and the codes must cover an ``h/16 x w/16`` grid.
- I2T  ``<bos><boi>{codes}<eoi>The caption of this image is:{caption}<eos>``: loss on
  the caption and <eos>.
- VQA  Gemma chat: ``<bos><start_of_turn>user\\n<boi>{codes}<eoi>\\n{question}<end_of_turn>\\n
  <start_of_turn>model\\n{answer}<end_of_turn>``: loss on the answer and the final
  <end_of_turn> (the turn end is how chat generation stops).
- Text ``<bos>{text}<eos>``: loss on every token after <bos>.

Text segments are encoded separately (the caption apart from the fixed prompt), so the
loss boundary is exact, as in the reference code. Randomness only comes from the
``numpy.random.Generator`` argument.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import TypedDict

import numpy as np

from liquid_jax.data.tokenizers.base import TextTokenizer, chat_turn_ids
from liquid_jax.data.vocab import VocabLayout

TASK_TEXT, TASK_T2I, TASK_I2T, TASK_VQA = 0, 1, 2, 3
TASK_NAMES = ("text", "t2i", "i2t", "vqa")

# The ten phrasings of the reference training code, verbatim (leading space included).
T2I_INSTRUCTIONS = (
    " Generate an image based on this description.",
    " Create an image that captures the provided description.",
    " Based on the previous text, produce a corresponding image.",
    " Please illustrate the above text with a picture.",
    " Translate the given description into a image.",
    " Construct a visual representation of the above description.",
    " Create a image that matches the text.",
    " Formulate a visual expression that reflects the narrative just provided.",
    " Give a visual depiction based on the above sentences.",
    " Create an image using the information mentioned above as guidance.",
)
CAPTION_PROMPT = "The caption of this image is:"
DOWNSAMPLE = 16  # pixels per code side of Chameleon's VQGAN


class Example(TypedDict):
    tokens: np.ndarray  # int32[L]
    loss_mask: np.ndarray  # int32[L], 1 where tokens[i] is a target
    task: np.ndarray  # int32[]


_Part = str | int | np.ndarray


def _ids(tokenizer: TextTokenizer, parts: Sequence[_Part]) -> np.ndarray:
    """Concatenates text (encoded), single ids and id arrays -> int32[N]."""
    chunks = []
    for part in parts:
        if isinstance(part, str):
            chunks.append(np.asarray(tokenizer.encode(part), np.int32))
        elif isinstance(part, (int, np.integer)):
            chunks.append(np.asarray([part], np.int32))
        else:
            chunks.append(np.asarray(part, np.int32).reshape(-1))
    return np.concatenate(chunks) if chunks else np.zeros((0,), np.int32)


def _example(prompt: np.ndarray, target: np.ndarray, task: int) -> Example:
    """prompt: int32[P] (no loss) + target: int32[T] (loss) -> Example of length P + T."""
    tokens = np.concatenate([prompt, target]).astype(np.int32)
    loss_mask = np.concatenate([np.zeros(len(prompt), np.int32), np.ones(len(target), np.int32)])
    loss_mask[0] = 0
    return {"tokens": tokens, "loss_mask": loss_mask, "task": np.int32(task)}


def image_size_text(width: int, height: int) -> str:
    """The multi-resolution prompt: ``Image Size: Width is {w} Height is {h}.``"""
    return f"Image Size: Width is {width} Height is {height}."


def image_code_tokens(
    layout: VocabLayout,
    codes,
    image_size: tuple[int, int] | None = None,
    downsample: int = DOWNSAMPLE,
) -> np.ndarray:
    """codes: int[h, w] or int[h * w] in [0, num_image_codes) -> token ids int32[h * w].

    With ``image_size=(width, height)`` in pixels, checks that the codes cover the
    ``height/downsample x width/downsample`` grid.
    """
    codes = np.asarray(codes)
    if codes.ndim not in (1, 2) or codes.size == 0:
        raise ValueError(f"image codes must be a non-empty int[h, w] or int[n], got {codes.shape}")
    if image_size is not None:
        width, height = image_size
        if width % downsample or height % downsample:
            raise ValueError(f"image size {width}x{height} is not a multiple of {downsample}")
        grid = (height // downsample, width // downsample)
        if (codes.ndim == 2 and codes.shape != grid) or codes.size != grid[0] * grid[1]:
            raise ValueError(
                f"image codes {codes.shape} do not cover the {grid[0]}x{grid[1]} grid of a "
                f"{width}x{height} image"
            )
    return layout.image_tokens(codes.reshape(-1))


def t2i_prompt(
    tokenizer: TextTokenizer,
    layout: VocabLayout,
    caption: str,
    *,
    instruction: str = T2I_INSTRUCTIONS[0],
    unconditional: bool = False,
    image_size: tuple[int, int] | None = None,
) -> np.ndarray:
    """The T2I prompt up to and including <boi>: int32[P]. Also what sampling feeds."""
    size = image_size_text(*image_size) if image_size is not None else None
    if unconditional:
        text = [] if size is None else [size + " "]
        return _ids(tokenizer, [layout.bos_id, *text, layout.unconditional_id, layout.boi_id])
    text = caption + (size or "") + instruction
    return _ids(tokenizer, [layout.bos_id, text, layout.boi_id])


def t2i_example(
    tokenizer: TextTokenizer,
    layout: VocabLayout,
    caption: str,
    codes,
    rng: np.random.Generator,
    *,
    cfg_dropout: float = 0.1,
    image_size: tuple[int, int] | None = None,
    downsample: int = DOWNSAMPLE,
) -> Example:
    """Text-to-image example; draws the instruction, then the CFG dropout, from ``rng``."""
    image = image_code_tokens(layout, codes, image_size, downsample)
    # Both draws always happen, so the generator advances the same way either way.
    instruction = T2I_INSTRUCTIONS[int(rng.integers(len(T2I_INSTRUCTIONS)))]
    unconditional = bool(rng.random() < cfg_dropout)
    prompt = t2i_prompt(
        tokenizer,
        layout,
        caption,
        instruction=instruction,
        unconditional=unconditional,
        image_size=image_size,
    )
    target = _ids(tokenizer, [image, layout.eoi_id, layout.eos_id])
    return _example(prompt, target, TASK_T2I)


def i2t_prompt(
    tokenizer: TextTokenizer,
    layout: VocabLayout,
    codes,
    *,
    image_size: tuple[int, int] | None = None,
    downsample: int = DOWNSAMPLE,
) -> np.ndarray:
    """``<bos><boi>{codes}<eoi>The caption of this image is:`` -> int32[P]."""
    image = image_code_tokens(layout, codes, image_size, downsample)
    return _ids(tokenizer, [layout.bos_id, layout.boi_id, image, layout.eoi_id, CAPTION_PROMPT])


def i2t_example(
    tokenizer: TextTokenizer,
    layout: VocabLayout,
    caption: str,
    codes,
    *,
    image_size: tuple[int, int] | None = None,
    downsample: int = DOWNSAMPLE,
) -> Example:
    """Image-to-text (captioning) example: loss on the caption and <eos>."""
    prompt = i2t_prompt(tokenizer, layout, codes, image_size=image_size, downsample=downsample)
    return _example(prompt, _ids(tokenizer, [caption, layout.eos_id]), TASK_I2T)


def vqa_prompt(
    tokenizer: TextTokenizer,
    layout: VocabLayout,
    question: str,
    codes,
    *,
    image_size: tuple[int, int] | None = None,
    downsample: int = DOWNSAMPLE,
) -> np.ndarray:
    """The user turn and the opening of the model turn (Gemma chat) -> int32[P]."""
    start, end = chat_turn_ids(tokenizer)
    image = image_code_tokens(layout, codes, image_size, downsample)
    return _ids(
        tokenizer,
        [
            layout.bos_id,
            start,
            "user\n",
            layout.boi_id,
            image,
            layout.eoi_id,
            "\n" + question,
            end,
            "\n",
            start,
            "model\n",
        ],
    )


def vqa_example(
    tokenizer: TextTokenizer,
    layout: VocabLayout,
    question: str,
    answer: str,
    codes,
    *,
    image_size: tuple[int, int] | None = None,
    downsample: int = DOWNSAMPLE,
) -> Example:
    """Visual question answering in Gemma's chat template: loss on answer + <end_of_turn>."""
    prompt = vqa_prompt(
        tokenizer, layout, question, codes, image_size=image_size, downsample=downsample
    )
    _, end = chat_turn_ids(tokenizer)
    return _example(prompt, _ids(tokenizer, [answer, end]), TASK_VQA)


def text_example(tokenizer: TextTokenizer, layout: VocabLayout, text: str) -> Example:
    """Plain language modelling: ``<bos>{text}<eos>``, loss on every token but <bos>."""
    return _example(
        _ids(tokenizer, [layout.bos_id]), _ids(tokenizer, [text, layout.eos_id]), TASK_TEXT
    )


def fit_to_length(
    example: Example,
    max_len: int,
    drops: Counter | None = None,
    *,
    text_overflow: str = "split",
) -> list[Example]:
    """Makes an example fit ``max_len`` tokens: [example], chunks of it, or [] (dropped).

    An example holding an image (T2I, I2T, VQA) is never cut: if it is longer than
    ``max_len`` it is dropped and ``drops["too_long_<task>"]`` is incremented (cutting a
    caption would also teach the model to stop mid-sentence). A text example is split
    (``text_overflow="split"``) into windows of ``max_len`` that overlap by one token, so
    every target token is predicted exactly once with its window as context; or
    truncated to its first window (``"truncate"``).
    """
    if max_len < 2:
        raise ValueError(f"max_len={max_len}: need at least 2 tokens for one prediction")
    length = len(example["tokens"])
    if length <= max_len:
        return [example]
    task = int(example["task"])
    if task != TASK_TEXT:
        if drops is not None:
            drops[f"too_long_{TASK_NAMES[task]}"] += 1
        return []
    if text_overflow not in ("split", "truncate"):
        raise ValueError(f"text_overflow={text_overflow!r}: use 'split' or 'truncate'")
    step = max_len - 1
    starts = range(0, length - 1, step) if text_overflow == "split" else [0]
    chunks = []
    for start in starts:
        loss_mask = example["loss_mask"][start : start + max_len].copy()
        loss_mask[0] = 0  # the window's first token has no context inside the window
        if loss_mask.any():
            tokens = example["tokens"][start : start + max_len].copy()
            chunks.append({"tokens": tokens, "loss_mask": loss_mask, "task": example["task"]})
    return chunks
