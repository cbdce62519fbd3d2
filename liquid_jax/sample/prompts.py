"""Prompts of different lengths -> one left-padded batch, and the checks done before it.

Rows are padded on the left with segment id 0, so every row's last prompt token sits in
the last column (one ``logit_indices`` for all) and generated tokens share cache slots.
Each row's positions count its own tokens from 0, so padding changes nothing (segment 0
is invisible to real tokens). The padded length is rounded up to a multiple of
``multiple`` so that prompts of similar lengths reuse one compiled program.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from liquid_jax.errors import InputError

LENGTH_MULTIPLE = 16


@dataclasses.dataclass(frozen=True)
class PromptBatch:
    """A left-padded batch of R rows of P slots.

    tokens, positions, segment_ids: int32[R, P]; lengths: int32[R] (real tokens per row).
    """

    tokens: np.ndarray
    positions: np.ndarray
    segment_ids: np.ndarray
    lengths: np.ndarray

    @property
    def num_rows(self) -> int:
        return self.tokens.shape[0]

    @property
    def length(self) -> int:
        return self.tokens.shape[1]


def padded_length(lengths: Sequence[int], multiple: int = LENGTH_MULTIPLE) -> int:
    """The longest length rounded up to a multiple of ``multiple``."""
    longest = max(int(n) for n in lengths)
    return -(-longest // multiple) * multiple


def left_pad(prompts: Sequence[np.ndarray], pad_id: int, length: int | None = None) -> PromptBatch:
    """prompts: R arrays int[P_r] (each non-empty) -> ``PromptBatch`` of ``length`` slots
    (default ``padded_length`` of the prompts)."""
    lengths = np.asarray([len(p) for p in prompts], np.int32)
    if len(prompts) == 0 or lengths.min() < 1:
        raise ValueError("left_pad: every prompt needs at least one token")
    length = padded_length(lengths) if length is None else int(length)
    if lengths.max() > length:
        raise ValueError(f"left_pad: a prompt of {lengths.max()} tokens exceeds length {length}")
    rows = len(prompts)
    tokens = np.full((rows, length), pad_id, np.int32)
    positions = np.zeros((rows, length), np.int32)
    segments = np.zeros((rows, length), np.int32)
    for r, prompt in enumerate(prompts):
        n = lengths[r]
        tokens[r, length - n :] = np.asarray(prompt, np.int32)
        positions[r, length - n :] = np.arange(n)
        segments[r, length - n :] = 1
    return PromptBatch(tokens, positions, segments, lengths)


def check_text(texts: Sequence[str], what: str) -> list[str]:
    """Non-empty strings, or ValueError naming the first bad one (``what`` e.g. "t2i")."""
    if isinstance(texts, str):
        texts = [texts]
    texts = list(texts)
    if not texts:
        raise InputError(f"{what}: no prompts given")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise InputError(f"{what}: prompt {i} is a {type(text).__name__}, not a string")
        if not text.strip():
            raise InputError(f"{what}: prompt {i} is empty")
    return texts


def check_fits(
    prompts: Sequence[np.ndarray],
    num_new: int,
    context: int,
    what: str,
    new_desc: str | None = None,
) -> None:
    """Raises ValueError unless every prompt plus ``num_new`` tokens fits the context.

    ``new_desc`` names the new tokens in the message (default ``max_new_tokens=N``).
    """
    new_desc = new_desc or f"max_new_tokens={num_new}"
    if num_new < 1:
        raise InputError(f"{what}: {new_desc} must be at least 1 token")
    for i, prompt in enumerate(prompts):
        need = len(prompt) + num_new
        if len(prompt) >= context:
            raise InputError(
                f"{what}: prompt {i} is {len(prompt)} tokens, longer than the model's "
                f"context of {context} tokens"
            )
        if need > context:
            raise InputError(
                f"{what}: prompt {i} ({len(prompt)} tokens) plus {new_desc} is {need} "
                f"tokens, more than the model's context of {context}"
            )
