"""Text generation prompts (plain and Gemma chat) and turning drawn ids back into text.

Plain: ``<bos>{prompt}``; chat (Gemma's template, as the VQA format uses):
``<bos><start_of_turn>user\\n{prompt}<end_of_turn>\\n<start_of_turn>model\\n``. A row
stops at ``<eos>`` or, in chat, ``<end_of_turn>``. Only text ids are drawn (image codes
are masked), so every generated id decodes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from liquid_jax.data.tokenizers.base import TextTokenizer, chat_turn_ids
from liquid_jax.data.vocab import VocabLayout
from liquid_jax.errors import InputError
from liquid_jax.sample.decode_loop import DecodeSpec, SamplingParams

MAX_NEW_TOKENS = 128  # Liquid's I2T / VQA evaluation limit; also our text default


def text_prompt(
    tokenizer: TextTokenizer, layout: VocabLayout, text: str, *, chat: bool = False
) -> np.ndarray:
    """The prompt ids int32[P] for ``text`` (plain or chat)."""
    if not chat:
        return np.asarray([layout.bos_id, *tokenizer.encode(text)], np.int32)
    start, end = chat_turn_ids(tokenizer)
    ids = [layout.bos_id, start, *tokenizer.encode("user\n" + text), end]
    ids += [*tokenizer.encode("\n"), start, *tokenizer.encode("model\n")]
    return np.asarray(ids, np.int32)


def stop_ids(tokenizer: TextTokenizer, layout: VocabLayout, chat: bool) -> tuple[int, ...]:
    """Ids that end a row: <eos>, plus <end_of_turn> in chat."""
    return (layout.eos_id, chat_turn_ids(tokenizer)[1]) if chat else (layout.eos_id,)


def text_decode_spec(
    layout: VocabLayout,
    stops: tuple[int, ...],
    *,
    max_new_tokens: int = MAX_NEW_TOKENS,
    temperature: float = 0.0,
    top_k: int = 0,
    top_p: float = 1.0,
) -> tuple[DecodeSpec, SamplingParams]:
    """Greedy when ``temperature <= 0`` (the default), else temperature / top-k / top-p."""
    if not 0.0 < float(top_p) <= 1.0:
        raise InputError(f"text: top_p={top_p} must be in (0, 1]")
    spec = DecodeSpec(
        max_new_tokens=int(max_new_tokens),
        token_range=(0, layout.text_vocab_size),
        greedy=float(temperature) <= 0.0,
        top_k=max(int(top_k or 0), 0),
        nucleus=float(top_p) < 1.0,
        eos_ids=tuple(int(s) for s in stops),
        pad_id=layout.pad_id,
    )
    return spec, SamplingParams.of(max(float(temperature), 0.0), top_p, 1.0)


def cut_at_stop(tokens: np.ndarray, stops: Sequence[int]) -> list[int]:
    """tokens: int[N] -> the ids before the first stop id."""
    ids = [int(t) for t in tokens]
    for i, t in enumerate(ids):
        if t in stops:
            return ids[:i]
    return ids


def decode_rows(tokenizer: TextTokenizer, tokens: np.ndarray, stops: Sequence[int]) -> list[str]:
    """tokens: int[B, N] -> B strings (each cut at its first stop id)."""
    return [tokenizer.decode(cut_at_stop(row, stops)) for row in np.asarray(tokens)]
