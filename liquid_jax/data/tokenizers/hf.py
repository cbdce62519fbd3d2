"""HF ``tokenizers`` back-end of ``TextTokenizer`` (``tokenizer.json``: Qwen2.5, Llama-3).

<bos>/<eos>/<pad> come from, in order: explicit arguments, the directory's
``tokenizer_config.json``, well-known names. Tokenizers without a beginning-of-sequence
token (Qwen2.5) use their end-of-text token as <bos>: in a packed stream it separates
documents, which is the job <bos> does in the Liquid formats.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers

from liquid_jax import fileio
from liquid_jax.data.tokenizers.base import (
    GEMMA_RESERVED_SLOTS,
    HF_CONFIG_FILE,
    HF_TOKENIZER_FILE,
    SPECIAL_TOKENS,
    check_decodable,
    plan_special_tokens,
    read_json,
    write_meta,
)
from liquid_jax.data.tokenizers.files import rename_tokens
from liquid_jax.errors import InputError, PathNotFoundError

_BOS_NAMES = ("<bos>", "<s>", "<|begin_of_text|>", "<|endoftext|>")
_EOS_NAMES = ("<eos>", "</s>", "<|end_of_text|>", "<|endoftext|>")
_PAD_NAMES = ("<pad>", "<|finetune_right_pad_id|>", "<|endoftext|>")
_STALE_HF_KEYS = ("added_tokens_decoder",)  # tokenizer.json is the source of truth


def _config_token(config: dict, key: str) -> str | None:
    value = config.get(key)
    if isinstance(value, dict):  # {"content": "<bos>", "lstrip": false, ...}
        value = value.get("content")
    return value if isinstance(value, str) else None


class HFTokenizer:
    """``TextTokenizer`` over an HF ``tokenizers.Tokenizer``.

    Args:
      tokenizer_json: the contents of a ``tokenizer.json``.
      config: the directory's ``tokenizer_config.json`` (kept on save), or None.
      bos_token, eos_token, pad_token: override the names found in ``config``.
      reserved_slots: tokens renamed to ``<boi>``, ``<eoi>``, ``<unconditional>`` when
        present; otherwise those are appended as special tokens.
      name: where it came from, for error messages.
    """

    KIND = "hf_tokenizers"

    def __init__(
        self,
        tokenizer_json: str,
        *,
        config: dict | None = None,
        bos_token: str | None = None,
        eos_token: str | None = None,
        pad_token: str | None = None,
        reserved_slots: Sequence[str] = GEMMA_RESERVED_SLOTS,
        name: str = "<tokenizer.json>",
    ):
        self.name = name
        try:
            tok = Tokenizer.from_str(tokenizer_json)
        except Exception as e:  # tokenizers raises a bare Exception on bad json
            raise InputError(f"{name}: not a tokenizers json: {e}") from e
        self.special_tokens_how, ids = plan_special_tokens(tok.token_to_id, reserved_slots)
        if self.special_tokens_how == "reuse":
            tok = Tokenizer.from_str(
                rename_tokens(tokenizer_json, dict(zip(ids, SPECIAL_TOKENS, strict=True)))
            )
        elif self.special_tokens_how == "append":
            tok.add_special_tokens(
                [AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS]
            )
        self._tok = tok
        self.hf_config = dict(config or {})
        # Ids may have gaps in odd files: the embedding table must cover the largest one.
        self.vocab_size = max(tok.get_vocab(with_added_tokens=True).values()) + 1
        self.boi_id, self.eoi_id, self.unconditional_id = (
            self._lookup((t,), t) for t in SPECIAL_TOKENS
        )
        cfg = self.hf_config
        self.eos_id = self._lookup((eos_token, _config_token(cfg, "eos_token"), *_EOS_NAMES), "eos")
        self.bos_id = self._lookup(
            (bos_token, _config_token(cfg, "bos_token"), *_BOS_NAMES), "bos", self.eos_id
        )
        self.pad_id = self._lookup(
            (pad_token, _config_token(cfg, "pad_token"), *_PAD_NAMES), "pad", self.eos_id
        )

    def _lookup(self, names, what: str, default: int | None = None) -> int:
        for token in names:
            if token is not None and (token_id := self._tok.token_to_id(token)) is not None:
                return token_id
        if default is not None:
            return default
        raise InputError(f"{self.name}: no {what} token found (tried {[n for n in names if n]})")

    @classmethod
    def load(cls, directory: str, **kwargs) -> HFTokenizer:
        """Loads ``directory/tokenizer.json`` (+ ``tokenizer_config.json`` if present)."""
        path = fileio.join(directory, HF_TOKENIZER_FILE)
        if not fileio.exists(path):
            raise PathNotFoundError(f"{path}: no tokenizer.json")
        text = fileio.read_text(path, encoding="utf-8")
        config_path = fileio.join(directory, HF_CONFIG_FILE)
        config = read_json(config_path) if fileio.exists(config_path) else None
        return cls(text, config=config, name=path, **kwargs)

    # ---- TextTokenizer --------------------------------------------------------------------

    def encode(self, text: str) -> list[int]:
        """text -> ids (no <bos>/<eos>, no post-processor); special names become ids."""
        return self._tok.encode(text, add_special_tokens=False).ids

    def decode(self, ids: Sequence[int]) -> str:
        """ids -> text; drops <bos>/<eos>/<pad>; raises on ids outside the text vocab."""
        drop = {self.bos_id, self.eos_id, self.pad_id}
        ids = [i for i in check_decodable(ids, self.vocab_size) if i not in drop]
        return self._tok.decode(ids, skip_special_tokens=False)

    def token_to_id(self, token: str) -> int | None:
        return self._tok.token_to_id(token)

    def id_to_token(self, token_id: int) -> str:
        check_decodable([token_id], self.vocab_size)
        return self._tok.id_to_token(int(token_id))

    def __len__(self) -> int:
        return self.vocab_size

    def save(self, directory: str) -> None:
        """Writes ``tokenizer.json``, an HF ``tokenizer_config.json`` and our metadata."""
        fileio.makedirs(directory)
        with fileio.local_file(fileio.join(directory, HF_TOKENIZER_FILE)) as local:
            self._tok.save(local)
        config = {k: v for k, v in self.hf_config.items() if k not in _STALE_HF_KEYS}
        config.setdefault("tokenizer_class", "PreTrainedTokenizerFast")
        token = self._tok.id_to_token
        config.update(
            bos_token=token(self.bos_id), eos_token=token(self.eos_id), pad_token=token(self.pad_id)
        )
        with fileio.open(fileio.join(directory, HF_CONFIG_FILE), "w") as f:
            json.dump(config, f, indent=2)
        write_meta(self, directory, self.KIND, self.special_tokens_how)


def train_bpe_tokenizer(
    texts: Iterable[str],
    vocab_size: int,
    *,
    special_tokens: Sequence[str] = ("<|endoftext|>",),
    bos_token: str | None = None,
    eos_token: str | None = None,
    pad_token: str | None = None,
    reserved_slots: Sequence[str] = GEMMA_RESERVED_SLOTS,
) -> HFTokenizer:
    """Trains a byte-level BPE ``tokenizer.json`` in memory (as GPT-2/Qwen/Llama-3 use).

    ``special_tokens`` take the first ids. The default (only ``<|endoftext|>``) is
    Qwen-like: no reserved slots, so <boi>/<eoi>/<unconditional> get appended; add
    ``<unused0..2>`` to get the reuse path, or ``<start_of_turn>``/``<end_of_turn>`` for chat.
    """
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(special_tokens),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return HFTokenizer(
        tok.to_str(),
        bos_token=bos_token,
        eos_token=eos_token,
        pad_token=pad_token,
        reserved_slots=reserved_slots,
        name="train_bpe_tokenizer",
    )
