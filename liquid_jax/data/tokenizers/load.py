"""Which back-end a tokenizer directory holds, and loading it (``load_tokenizer``).

Apart from ``tokenizer`` (the interface and the special-token rule) because it imports
both back-ends, which themselves build on ``tokenizer``.
"""

from __future__ import annotations

from liquid_jax import fileio
from liquid_jax.data.tokenizers.base import (
    HF_TOKENIZER_FILE,
    META_FILE,
    SP_MODEL_FILE,
    TextTokenizer,
    read_json,
)
from liquid_jax.data.tokenizers.chat import read_chat_template
from liquid_jax.data.tokenizers.hf import HFTokenizer
from liquid_jax.data.tokenizers.sp import SentencePieceTokenizer
from liquid_jax.errors import InputError, PathNotFoundError


def check_meta(tokenizer: TextTokenizer, directory: str) -> None:
    """Checks a loaded tokenizer against its saved ids (guards against edited files)."""
    path = fileio.join(directory, META_FILE)
    if not fileio.exists(path):
        return
    meta = read_json(path)
    for key in ("vocab_size", "bos_id", "eos_id", "boi_id", "eoi_id", "unconditional_id"):
        if key in meta and meta[key] != getattr(tokenizer, key):
            raise InputError(
                f"{path}: saved {key}={meta[key]} but the tokenizer files give "
                f"{getattr(tokenizer, key)}"
            )


def load_tokenizer(directory: str, **kwargs) -> TextTokenizer:
    """Loads a tokenizer directory (ours, or an HF model directory).

    Which back-end: ``liquid_text_vocab.json``'s ``kind`` if present, else SentencePiece
    when ``tokenizer.model`` exists (Gemma), else HF ``tokenizers`` for ``tokenizer.json``
    (Qwen2.5, Llama-3). ``kwargs`` go to the back-end's ``load``. The directory's chat
    template (``data.tokenizers.chat``), if any, is ``tokenizer.chat_template``.
    """
    meta_path = fileio.join(directory, META_FILE)
    kind = read_json(meta_path).get("kind") if fileio.exists(meta_path) else None
    if kind is None:
        if fileio.exists(fileio.join(directory, SP_MODEL_FILE)):
            kind = SentencePieceTokenizer.KIND
        elif fileio.exists(fileio.join(directory, HF_TOKENIZER_FILE)):
            kind = HFTokenizer.KIND
        else:
            raise PathNotFoundError(
                f"{directory}: no {SP_MODEL_FILE} or {HF_TOKENIZER_FILE} to load a tokenizer from"
            )
    backends = {SentencePieceTokenizer.KIND: SentencePieceTokenizer, HFTokenizer.KIND: HFTokenizer}
    if kind not in backends:
        raise InputError(f"{meta_path}: unknown tokenizer kind {kind!r}")
    tokenizer = backends[kind].load(directory, **kwargs)
    check_meta(tokenizer, directory)
    # The chat template travels with the tokenizer (and is saved with it, even when it
    # came from a chat_template.jinja beside the config).
    tokenizer.chat_template = read_chat_template(directory)
    if tokenizer.chat_template and hasattr(tokenizer, "hf_config"):
        tokenizer.hf_config.setdefault("chat_template", tokenizer.chat_template)
    return tokenizer
