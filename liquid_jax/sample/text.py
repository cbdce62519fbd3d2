"""Text generation prompts (plain and chat) and turning drawn ids back into text.

Plain: ``<bos>{prompt}``. Chat (``chat_ids``, any number of turns): the tokenizer's own
chat template where it has one (Gemma, Qwen2.5's ChatML, Llama-3, ...;
``data.tokenizers.chat``), rendered and encoded as transformers' ``apply_chat_template``
does; otherwise Gemma's, as Liquid's VQA format writes it:
``<bos><start_of_turn>user\\n{prompt}<end_of_turn>\\n<start_of_turn>model\\n``. An
image in a turn is ``<boi>{codes}<eoi>\\n`` before the turn's text, placed wherever the
template puts the user's content. A row stops at ``<eos>`` or, in chat, the template's
end of turn (``<end_of_turn>``, ``<|im_end|>``, ``<|eot_id|>``). Only text ids are drawn
(image codes are masked), so every generated id decodes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from liquid_jax.data.formats import image_code_tokens
from liquid_jax.data.tokenizers.base import TextTokenizer, chat_turn_ids
from liquid_jax.data.tokenizers.chat import render_chat
from liquid_jax.data.vocab import VocabLayout
from liquid_jax.errors import InputError
from liquid_jax.sample.decode_loop import DecodeSpec, SamplingParams

MAX_NEW_TOKENS = 128  # Liquid's I2T / VQA evaluation limit; also our text default
# Stands for an image while a template renders (a private-use character no text holds).
IMAGE_SLOT = "\ue000"
# Tokens that end a turn in the families' templates (Gemma, ChatML, Llama-3, Phi).
TURN_ENDS = ("<end_of_turn>", "<|im_end|>", "<|eot_id|>", "<|end|>")
# Template tokens taken by name from the rendered text (as HF splits out its added
# tokens) rather than left to the model: a SentencePiece control piece is not parsed.
TEMPLATE_TOKENS = (*TURN_ENDS, "<start_of_turn>", "<|im_start|>", "<|start_header_id|>",
                   "<|end_header_id|>", "<|begin_of_text|>", "<|endoftext|>")  # fmt: skip


def _template_tokens(tokenizer: TextTokenizer) -> dict[str, str]:
    """bos_token, eos_token, ... as a template reads them: tokenizer_config.json's names,
    else the tokens of the tokenizer's ids."""
    config = getattr(tokenizer, "hf_config", None) or {}
    out = {}
    for key in ("bos_token", "eos_token", "pad_token", "unk_token"):
        value = config.get(key)
        value = value.get("content") if isinstance(value, dict) else value
        if isinstance(value, str):
            out[key] = value
    for key, token_id in (("bos_token", tokenizer.bos_id), ("eos_token", tokenizer.eos_id)):
        out.setdefault(key, tokenizer.id_to_token(token_id))
    return out


def _image_ids(layout: VocabLayout, codes) -> list[int]:
    return [layout.boi_id, *image_code_tokens(layout, codes).tolist(), layout.eoi_id]


def _templated_chat(tokenizer, layout, template, messages, add_generation_prompt) -> list[int]:
    images, shown = [], []
    for m in messages:
        content = m.get("content") or ""
        if m.get("image") is not None:
            images.append(m["image"])
            content = IMAGE_SLOT + "\n" + content
        shown.append({"role": m["role"], "content": content})
    text = render_chat(
        template,
        shown,
        special_tokens=_template_tokens(tokenizer),
        add_generation_prompt=add_generation_prompt,
    )
    pieces = text.split(IMAGE_SLOT)
    if len(pieces) != len(images) + 1:
        raise InputError(
            f"chat: the tokenizer's chat template shows {len(pieces) - 1} of the "
            f"{len(images)} images (it drops or repeats message content)"
        )
    names = {*TEMPLATE_TOKENS, *_template_tokens(tokenizer).values()}
    named = {n: tokenizer.token_to_id(n) for n in names if n}
    named = {n: i for n, i in named.items() if i is not None}
    split = re.compile("(" + "|".join(map(re.escape, sorted(named, key=len, reverse=True))) + ")")
    ids: list[int] = []
    for i, piece in enumerate(pieces):
        for part in split.split(piece) if named else [piece]:
            ids += [named[part]] if part in named else tokenizer.encode(part) if part else []
        if i < len(images):
            ids += _image_ids(layout, images[i])
    return ids


def _gemma_chat(tokenizer, layout, messages, add_generation_prompt) -> list[int]:
    """Gemma's template as Liquid's formats encode it (``formats.vqa_prompt``): the role
    line and the text in one piece, or an image between them. A system message is put
    before the next user turn's text, as Gemma's own templates do."""
    start, end = chat_turn_ids(tokenizer)
    ids, system = [layout.bos_id], ""
    for m in messages:
        role, content = m["role"], m.get("content") or ""
        if role == "system":
            system += content + "\n\n"
            continue
        if role == "user":
            content, system = system + content, ""
        role = "model" if role == "assistant" else role
        ids.append(start)
        if m.get("image") is None:
            ids += tokenizer.encode(f"{role}\n{content}")
        else:
            ids += tokenizer.encode(f"{role}\n") + _image_ids(layout, m["image"])
            ids += tokenizer.encode("\n" + content)
        ids += [end, *tokenizer.encode("\n")]
    if add_generation_prompt:
        ids += [start, *tokenizer.encode("model\n")]
    return ids


def chat_ids(
    tokenizer: TextTokenizer,
    layout: VocabLayout,
    messages: Sequence[dict],
    *,
    add_generation_prompt: bool = True,
) -> np.ndarray:
    """A conversation -> its prompt ids int32[P], ending with the model's turn opened.

    messages: ``{"role": "system" | "user" | "assistant", "content": str}``, a message
    optionally carrying ``"image"``: its codes int[h, w] (``<boi>{codes}<eoi>\\n`` before
    the text). The tokenizer's ``chat_template`` when it has one, else Gemma's.
    """
    if not messages:
        raise InputError("chat: no messages")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise InputError(f"chat: message {i} is not a dict with a 'role'")
        if not isinstance(m.get("content", ""), str):
            raise InputError(f"chat: message {i}'s content is not a string")
    template = getattr(tokenizer, "chat_template", None)
    if template:
        ids = _templated_chat(tokenizer, layout, template, messages, add_generation_prompt)
    else:
        ids = _gemma_chat(tokenizer, layout, messages, add_generation_prompt)
    return np.asarray(ids, np.int32)


def chat_stop_ids(tokenizer: TextTokenizer, layout: VocabLayout) -> tuple[int, ...]:
    """<eos> plus the end-of-turn tokens the tokenizer has (Gemma's is required when the
    tokenizer has no template of its own)."""
    if not getattr(tokenizer, "chat_template", None):
        return (layout.eos_id, chat_turn_ids(tokenizer)[1])
    ends = [tokenizer.token_to_id(t) for t in TURN_ENDS]
    return (layout.eos_id, *dict.fromkeys(i for i in ends if i is not None and i != layout.eos_id))


def text_prompt(
    tokenizer: TextTokenizer, layout: VocabLayout, text: str, *, chat: bool = False
) -> np.ndarray:
    """The prompt ids int32[P] for ``text`` (plain, or one user turn of chat)."""
    if not chat:
        return np.asarray([layout.bos_id, *tokenizer.encode(text)], np.int32)
    return chat_ids(tokenizer, layout, [{"role": "user", "content": text}])


def stop_ids(tokenizer: TextTokenizer, layout: VocabLayout, chat: bool) -> tuple[int, ...]:
    """Ids that end a row: <eos>, plus the end of turn in chat."""
    return chat_stop_ids(tokenizer, layout) if chat else (layout.eos_id,)


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
