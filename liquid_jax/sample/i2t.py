"""Image-to-text: captioning and visual question answering.

An image is read and resized as for training (``data.images.load_image``), encoded by
the VQGAN, and put into Liquid's prompt: ``<bos><boi>{codes}<eoi>The caption of this
image is:`` (``formats.i2t_prompt``) or, with a question, a user turn of the tokenizer's
chat template holding ``<boi>{codes}<eoi>\\n{question}`` (``text.chat_ids``; without a
template Gemma's, ``...<boi>{codes}<eoi>\\n{question}<end_of_turn>\\n<start_of_turn>model\\n``
as ``formats.vqa_prompt`` writes it). Decoding is greedy up to 128 tokens, as Liquid evaluates.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from PIL import Image

from liquid_jax.data.formats import i2t_prompt
from liquid_jax.data.images import load_image
from liquid_jax.data.tokenizers.base import TextTokenizer
from liquid_jax.data.vocab import VocabLayout
from liquid_jax.errors import InputError
from liquid_jax.sample.text import chat_ids, chat_stop_ids


def as_image_list(images) -> list:
    """One image (path, bytes, PIL, array [H, W, 3]) or many (a sequence, array [N, H, W, 3])
    -> a list of images."""
    if isinstance(images, (str, os.PathLike, bytes, Image.Image)):
        return [images]
    if isinstance(images, np.ndarray):
        return [images] if images.ndim == 3 else list(images)
    return list(images)


def load_pixels(source, size: int | tuple[int, int], index: int = 0) -> np.ndarray:
    """A path, bytes, PIL image, uint8 array [H, W, 3] or float array in [-1, 1] ->
    float32[H, W, 3] in [-1, 1]. Files are cropped to ``size`` (int or (width, height));
    float arrays are taken as they are. Raises ``ImageError`` naming a bad file."""
    if isinstance(source, np.ndarray):
        if source.ndim != 3 or source.shape[-1] != 3:
            raise InputError(f"i2t: image {index} array has shape {source.shape}, not [H, W, 3]")
        if source.dtype == np.uint8:
            return load_image(Image.fromarray(source), size, name=f"<array {index}>")
        return np.asarray(source, np.float32)
    if isinstance(source, (str, os.PathLike, bytes, Image.Image)):
        return load_image(source, size)
    raise InputError(f"i2t: image {index} is a {type(source).__name__}, not a path or image")


def questions_for(prompts, num_images: int) -> list[str | None]:
    """None (captions), one question for every image, or one question per image."""
    if prompts is None or isinstance(prompts, str):
        questions = [prompts] * num_images
    else:
        questions = list(prompts)
        if len(questions) != num_images:
            raise InputError(f"i2t: {len(questions)} questions for {num_images} images")
    for i, q in enumerate(questions):
        if q is not None and not str(q).strip():
            raise InputError(f"i2t: question {i} is empty (pass None for a caption)")
    return questions


def i2t_rows(
    tokenizer: TextTokenizer,
    layout: VocabLayout,
    codes: np.ndarray,
    question: str | None,
) -> np.ndarray:
    """codes: int[h, w] -> the prompt int32[P] (caption, or VQA with ``question``)."""
    if question is None:
        return i2t_prompt(tokenizer, layout, codes)
    return chat_ids(tokenizer, layout, [{"role": "user", "content": question, "image": codes}])


def i2t_stop_ids(
    tokenizer: TextTokenizer, layout: VocabLayout, questions: Sequence[str | None]
) -> tuple[int, ...]:
    """<eos>, plus the end of turn when any prompt is a chat (VQA) turn."""
    if any(q is not None for q in questions):
        return chat_stop_ids(tokenizer, layout)
    return (layout.eos_id,)
