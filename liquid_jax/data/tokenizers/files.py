"""An HF directory's tokenizer files as data: their token -> id table, where Liquid's
special tokens go in it, copying the files, and registering added tokens in them.

Works on the files themselves (``tokenizer.json``, ``tokenizer_config.json``, or a
SentencePiece ``tokenizer.model``) without building a tokenizer, so converting a model
(``import-hf``) needs neither transformers nor torch and leaves the files as they were
apart from the added tokens. Directories may be local or URLs (``gs://``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from liquid_jax import fileio
from liquid_jax.data.tokenizers.base import (
    GEMMA_RESERVED_SLOTS,
    HF_CONFIG_FILE,
    HF_TOKENIZER_FILE,
    SP_MODEL_FILE,
    plan_special_tokens,
    read_json,
)
from liquid_jax.data.tokenizers.sp import parse_model_proto

# Every file an HF tokenizer may be made of (copied together, whichever exist).
TOKENIZER_FILES = (
    HF_TOKENIZER_FILE,
    HF_CONFIG_FILE,
    SP_MODEL_FILE,
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
    "chat_template.jinja",
    "chat_template.json",
)


def json_vocab(data: dict) -> dict[str, int]:
    """token -> id of a parsed ``tokenizer.json``: the model's vocab, then added tokens."""
    ids: dict[str, int] = {}
    vocab = (data.get("model") or {}).get("vocab") or {}
    if isinstance(vocab, list):  # Unigram: [[piece, score], ...], id = index
        ids.update({piece: i for i, (piece, _) in enumerate(vocab)})
    else:  # BPE / WordPiece / WordLevel: {piece: id}
        ids.update({piece: int(i) for piece, i in vocab.items()})
    ids.update({t["content"]: int(t["id"]) for t in data.get("added_tokens", [])})
    return ids


def rename_tokens(tokenizer_json: str, renames: dict[str, str]) -> str:
    """Renames tokens in a ``tokenizer.json`` text (added tokens and the model vocab)."""
    data = json.loads(tokenizer_json)
    for added in data.get("added_tokens", []):
        if added["content"] in renames:
            added["content"] = renames[added["content"]]
            added["special"] = True
    vocab = data.get("model", {}).get("vocab")
    if isinstance(vocab, dict):
        for old, new in renames.items():
            if old in vocab:
                vocab[new] = vocab.pop(old)
    elif isinstance(vocab, list):
        for entry in vocab:
            if entry[0] in renames:
                entry[0] = renames[entry[0]]
    return json.dumps(data, ensure_ascii=False)


class TokenizerFiles:
    """The token -> id table of the tokenizer files in a directory (if any)."""

    def __init__(self, directory: str):
        self.directory = directory
        self.ids: dict[str, int] = {}
        fast = fileio.join(directory, HF_TOKENIZER_FILE)
        spm = fileio.join(directory, SP_MODEL_FILE)
        if fileio.exists(fast):
            self.ids.update(json_vocab(read_json(fast)))
        elif fileio.exists(spm):
            proto = parse_model_proto(fileio.read_bytes(spm), spm)
            self.ids.update({p.piece: i for i, p in enumerate(proto.pieces)})
        config = fileio.join(directory, HF_CONFIG_FILE)
        if fileio.exists(config):
            decoder = read_json(config).get("added_tokens_decoder") or {}
            self.ids.update({t["content"]: int(i) for i, t in decoder.items()})

    @property
    def present(self) -> bool:
        return bool(self.ids)

    def __len__(self) -> int:
        """Like ``len(tokenizer)``: one past the largest id."""
        return max(self.ids.values()) + 1 if self.ids else 0

    def get(self, token: str) -> int | None:
        return self.ids.get(token)

    def special_token_ids(
        self, next_id: int | None = None, reserved_slots=GEMMA_RESERVED_SLOTS
    ) -> tuple[str, tuple[int, int, int]]:
        """``(how, ids of <boi>, <eoi>, <unconditional>)`` by ``plan_special_tokens``; when
        they are appended they take ids ``next_id, +1, +2`` (default: after the last id)."""
        how, ids = plan_special_tokens(self.get, reserved_slots)
        if how == "append":
            first = len(self) if next_id is None else next_id
            return how, (first, first + 1, first + 2)
        return how, tuple(ids.values())


def copy_files(src_dir: str, dst_dir: str, names: Iterable[str]) -> list[str]:
    """Copies ``names`` from ``src_dir`` to ``dst_dir`` (either local or a URL), skipping
    files that are absent or would be copied onto themselves; returns the names copied."""
    copied = []
    fileio.makedirs(dst_dir)
    for name in names:
        src, dst = fileio.join(src_dir, name), fileio.join(dst_dir, name)
        if fileio.exists(src) and fileio.absolute(src) != fileio.absolute(dst):
            fileio.write_bytes(dst, fileio.read_bytes(src))
            copied.append(name)
    return copied


def copy_tokenizer_files(src_dir: str, dst_dir: str) -> list[str]:
    """Copies the ``TOKENIZER_FILES`` that ``src_dir`` has; returns their names."""
    return copy_files(src_dir, dst_dir, TOKENIZER_FILES)


def _added_token(content: str, token_id: int) -> dict:
    return {
        "id": token_id,
        "content": content,
        "single_word": False,
        "lstrip": False,
        "rstrip": False,
        "normalized": False,
        "special": True,
    }


def add_special_tokens(directory: str, tokens: dict[str, int]) -> None:
    """Registers ``tokens`` (content -> id) as special added tokens in the tokenizer files
    of ``directory`` (edited in place; files that are absent are left absent)."""
    fast = fileio.join(directory, HF_TOKENIZER_FILE)
    if fileio.exists(fast):
        data = read_json(fast)
        data.setdefault("added_tokens", []).extend(_added_token(c, i) for c, i in tokens.items())
        with fileio.open(fast, "w", encoding="utf-8") as f:
            json.dump(data, f, ensure_ascii=False, indent=2)
    config_path = fileio.join(directory, HF_CONFIG_FILE)
    config = read_json(config_path) if fileio.exists(config_path) else {}
    decoder = config.setdefault("added_tokens_decoder", {})
    for content, i in tokens.items():
        decoder[str(i)] = {k: v for k, v in _added_token(content, i).items() if k != "id"}
    extra = config.get("extra_special_tokens") or config.get("additional_special_tokens") or []
    if isinstance(extra, list):
        key = (
            "extra_special_tokens"
            if "extra_special_tokens" in config
            else "additional_special_tokens"
        )
        config[key] = extra + [c for c in tokens if c not in extra]
    with fileio.open(config_path, "w", encoding="utf-8") as f:
        json.dump(config, f, ensure_ascii=False, indent=2)
