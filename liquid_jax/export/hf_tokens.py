"""Reading token ids from HF tokenizer files, and adding special tokens to copies of them.

Works on the files themselves (``tokenizer.json``, ``tokenizer_config.json``, or a
sentencepiece ``tokenizer.model``), so converting a model needs neither transformers nor
torch.
"""

from __future__ import annotations

import json
import os


class TokenizerFiles:
    """The token -> id table of the tokenizer files in a directory (if any)."""

    def __init__(self, directory: str):
        self.directory = directory
        self.ids: dict[str, int] = {}
        fast = os.path.join(directory, "tokenizer.json")
        spm = os.path.join(directory, "tokenizer.model")
        if os.path.exists(fast):
            with open(fast) as f:
                data = json.load(f)
            vocab = (data.get("model") or {}).get("vocab") or {}
            if isinstance(vocab, list):  # Unigram: [[piece, score], ...], id = index
                self.ids.update({piece: i for i, (piece, _) in enumerate(vocab)})
            else:
                self.ids.update({piece: int(i) for piece, i in vocab.items()})
            self.ids.update({t["content"]: int(t["id"]) for t in data.get("added_tokens", [])})
        elif os.path.exists(spm):
            import sentencepiece

            proc = sentencepiece.SentencePieceProcessor(model_file=spm)
            self.ids.update({proc.id_to_piece(i): i for i in range(proc.get_piece_size())})
        config = os.path.join(directory, "tokenizer_config.json")
        if os.path.exists(config):
            with open(config) as f:
                decoder = json.load(f).get("added_tokens_decoder") or {}
            self.ids.update({t["content"]: int(i) for i, t in decoder.items()})

    @property
    def present(self) -> bool:
        return bool(self.ids)

    def __len__(self) -> int:
        """Like ``len(tokenizer)``: one past the largest id."""
        return max(self.ids.values()) + 1 if self.ids else 0

    def get(self, token: str) -> int | None:
        return self.ids.get(token)


def add_special_tokens(directory: str, tokens: dict[str, int]) -> None:
    """Registers ``tokens`` (content -> id) as special added tokens in the tokenizer files
    of ``directory`` (edited in place; files that are absent are left absent)."""
    entry = lambda content, i: {
        "id": i,
        "content": content,
        "single_word": False,
        "lstrip": False,
        "rstrip": False,
        "normalized": False,
        "special": True,
    }
    fast = os.path.join(directory, "tokenizer.json")
    if os.path.exists(fast):
        with open(fast) as f:
            data = json.load(f)
        data.setdefault("added_tokens", []).extend(entry(c, i) for c, i in tokens.items())
        with open(fast, "w") as f:
            json.dump(data, f, ensure_ascii=False, indent=2)
    config_path = os.path.join(directory, "tokenizer_config.json")
    config = {}
    if os.path.exists(config_path):
        with open(config_path) as f:
            config = json.load(f)
    decoder = config.setdefault("added_tokens_decoder", {})
    for content, i in tokens.items():
        decoder[str(i)] = {k: v for k, v in entry(content, i).items() if k != "id"}
    extra = config.get("extra_special_tokens") or config.get("additional_special_tokens") or []
    if isinstance(extra, list):
        key = (
            "extra_special_tokens"
            if "extra_special_tokens" in config
            else ("additional_special_tokens")
        )
        config[key] = extra + [c for c in tokens if c not in extra]
    with open(config_path, "w") as f:
        json.dump(config, f, ensure_ascii=False, indent=2)
