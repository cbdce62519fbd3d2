"""Text tokenizers behind one interface, and where Liquid's special tokens live.

Two back-ends implement ``TextTokenizer``: SentencePiece (``tokenizer.model``, as Gemma
ships and as ``train_sentencepiece`` writes) and HF ``tokenizers`` (``tokenizer.json``, as
Qwen2.5 and Llama-3 ship).

Liquid adds three tokens to the text vocabulary: ``<boi>``, ``<eoi>`` and
``<unconditional>``. Where they come from, in order of preference:

1. the tokenizer already has them (a tokenizer we saved before);
2. it has reserved slots (Gemma's ``<unused0>``, ``<unused1>``, ``<unused2>``, ids 7-9):
   the slots are renamed, so the released Liquid model's ids are kept and the text
   vocabulary does not grow;
3. otherwise they are appended at the end: the text vocabulary grows by 3.

After this every back-end knows the canonical names: ``encode("<boi>") == [boi_id]``,
``decode`` renders them by name, and the exported HF tokenizer maps them too.

A saved tokenizer is a directory holding the back-end's files, HF's
``tokenizer_config.json`` (so ``transformers.AutoTokenizer.from_pretrained(dir)`` works)
and ``liquid_text_vocab.json`` (which back-end, and the special ids).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

from liquid_jax import fileio
from liquid_jax.data.vocab import VocabLayout
from liquid_jax.errors import InputError

BOI, EOI, UNCONDITIONAL = "<boi>", "<eoi>", "<unconditional>"
SPECIAL_TOKENS = (BOI, EOI, UNCONDITIONAL)
# Slots renamed to SPECIAL_TOKENS when present, as in the released Gemma-based model.
GEMMA_RESERVED_SLOTS = ("<unused0>", "<unused1>", "<unused2>")
# Gemma's chat template tokens (used by the VQA / chat format).
START_OF_TURN, END_OF_TURN = "<start_of_turn>", "<end_of_turn>"


def chat_turn_ids(tokenizer: TextTokenizer) -> tuple[int, int]:
    """(<start_of_turn>, <end_of_turn>) ids (Gemma's chat tokens, which the VQA and chat
    formats use), or ValueError naming the tokenizer."""
    start, end = tokenizer.token_to_id(START_OF_TURN), tokenizer.token_to_id(END_OF_TURN)
    if start is None or end is None:
        name = getattr(tokenizer, "name", type(tokenizer).__name__)
        raise InputError(f"the tokenizer {name} has no {START_OF_TURN} / {END_OF_TURN} tokens "
                         "(Gemma's chat template), which chat and VQA need")  # fmt: skip
    return start, end


META_FILE = "liquid_text_vocab.json"
HF_CONFIG_FILE = "tokenizer_config.json"
SP_MODEL_FILE = "tokenizer.model"
HF_TOKENIZER_FILE = "tokenizer.json"


@runtime_checkable
class TextTokenizer(Protocol):
    """What the rest of liquid_jax needs from a text tokenizer.

    ``encode`` never adds ``<bos>``/``<eos>`` (the Liquid formats place them); special
    token names written in the text (``"<boi>"``) are parsed to their ids. ``decode``
    drops ``<bos>``, ``<eos>`` and ``<pad>`` and rejects ids outside the text vocabulary
    (image tokens must be stripped first).
    """

    vocab_size: int  # text vocabulary incl. <boi>/<eoi>/<unconditional>: len(tokenizer)
    bos_id: int
    eos_id: int
    pad_id: int
    boi_id: int
    eoi_id: int
    unconditional_id: int

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: Sequence[int]) -> str: ...

    def token_to_id(self, token: str) -> int | None: ...

    def id_to_token(self, token_id: int) -> str: ...

    def save(self, directory: str) -> None: ...


def plan_special_tokens(
    token_to_id: Callable[[str], int | None],
    reserved_slots: Sequence[str] = GEMMA_RESERVED_SLOTS,
) -> tuple[str, dict[str, int] | None]:
    """Decides where <boi>/<eoi>/<unconditional> go.

    Returns ``(how, ids)``: ``("present", {name: id})`` when all three exist,
    ``("reuse", {reserved_name: id})`` when all reserved slots exist (rename them), else
    ``("append", None)``. A tokenizer holding only some of them is an error: silently
    mixing slots would give ids that no released checkpoint uses.
    """
    present = {name: token_to_id(name) for name in SPECIAL_TOKENS}
    found = [n for n, i in present.items() if i is not None]
    if len(found) == len(SPECIAL_TOKENS):
        return "present", present  # type: ignore[return-value]
    if found:
        raise ValueError(
            f"tokenizer has {found} but not all of {list(SPECIAL_TOKENS)}; "
            "refusing to mix existing and new special-token slots"
        )
    if len(reserved_slots) != len(SPECIAL_TOKENS):
        raise ValueError(f"reserved_slots must name {len(SPECIAL_TOKENS)} tokens")
    slots = {name: token_to_id(name) for name in reserved_slots}
    if all(i is not None for i in slots.values()):
        return "reuse", slots  # type: ignore[return-value]
    return "append", None


def vocab_layout(tokenizer: TextTokenizer, num_image_codes: int) -> VocabLayout:
    """The merged vocabulary: image code ``c`` is token ``tokenizer.vocab_size + c``."""
    return VocabLayout(
        text_vocab_size=tokenizer.vocab_size,
        num_image_codes=num_image_codes,
        boi_id=tokenizer.boi_id,
        eoi_id=tokenizer.eoi_id,
        unconditional_id=tokenizer.unconditional_id,
        bos_id=tokenizer.bos_id,
        eos_id=tokenizer.eos_id,
        pad_id=tokenizer.pad_id,
    )


def check_decodable(ids: Sequence[int], vocab_size: int) -> list[int]:
    """Returns ``ids`` as Python ints; raises if any lies outside ``[0, vocab_size)``."""
    ids = [int(i) for i in ids]
    bad = [i for i in ids if not 0 <= i < vocab_size]
    if bad:
        raise ValueError(
            f"decode: ids {bad[:5]} are outside the text vocabulary [0, {vocab_size}) "
            "(image tokens? strip them with VocabLayout.is_image first)"
        )
    return ids


def write_meta(tokenizer: TextTokenizer, directory: str, kind: str, how: str) -> None:
    """Writes ``liquid_text_vocab.json``: back-end kind, how specials were placed, ids."""
    meta = {
        "kind": kind,
        "special_tokens": how,
        "vocab_size": tokenizer.vocab_size,
        "bos_id": tokenizer.bos_id,
        "eos_id": tokenizer.eos_id,
        "pad_id": tokenizer.pad_id,
        "boi_id": tokenizer.boi_id,
        "eoi_id": tokenizer.eoi_id,
        "unconditional_id": tokenizer.unconditional_id,
    }
    with fileio.open(fileio.join(directory, META_FILE), "w") as f:
        json.dump(meta, f, indent=2)


def read_json(path: str) -> dict:
    try:
        with fileio.open(path) as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise InputError(f"{path}: cannot read tokenizer json: {e}") from e
