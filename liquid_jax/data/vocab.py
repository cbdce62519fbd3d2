"""The merged vocabulary: text tokens, then image codes, then padding.

Rows ``[0, text_vocab_size)`` belong to the text tokenizer (including ``<boi>``,
``<eoi>`` and ``<unconditional>``, which reuse reserved slots or are appended to it);
image code ``c`` is token ``text_vocab_size + c``; the table is padded up to a multiple
that divides the tensor-parallel axis. Padding rows are never produced by sampling.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np

from liquid_jax import fileio
from liquid_jax.errors import InputError, PathNotFoundError

VOCAB_FILE = "liquid_vocab.json"


@dataclasses.dataclass(frozen=True)
class VocabLayout:
    """Where each kind of token lives in the merged embedding table."""

    text_vocab_size: int
    num_image_codes: int
    boi_id: int
    eoi_id: int
    unconditional_id: int
    bos_id: int
    eos_id: int
    pad_id: int = 0

    def __post_init__(self):
        for name in ("boi_id", "eoi_id", "unconditional_id", "bos_id", "eos_id", "pad_id"):
            value = getattr(self, name)
            if not 0 <= value < self.text_vocab_size:
                raise ValueError(
                    f"vocab layout: {name}={value} is outside the text vocabulary "
                    f"[0, {self.text_vocab_size})"
                )
        if self.num_image_codes < 0:
            raise ValueError(f"vocab layout: num_image_codes={self.num_image_codes} < 0")

    @property
    def image_offset(self) -> int:
        return self.text_vocab_size

    @property
    def vocab_size(self) -> int:
        """Text plus image tokens (no padding)."""
        return self.text_vocab_size + self.num_image_codes

    def padded_vocab_size(self, multiple: int = 128) -> int:
        return -(-self.vocab_size // multiple) * multiple

    def image_tokens(self, codes):
        """codes: int[...] in [0, num_image_codes) -> token ids int[...]."""
        codes = np.asarray(codes)
        if codes.size and (codes.min() < 0 or codes.max() >= self.num_image_codes):
            raise ValueError(
                f"image codes must lie in [0, {self.num_image_codes}), "
                f"got range [{codes.min()}, {codes.max()}]"
            )
        return codes.astype(np.int32) + self.image_offset

    def codes_of(self, tokens):
        """Inverse of ``image_tokens``; raises if any token is not an image token."""
        tokens = np.asarray(tokens)
        codes = tokens - self.image_offset
        if codes.size and (codes.min() < 0 or codes.max() >= self.num_image_codes):
            raise ValueError("tokens include ids that are not image codes")
        return codes.astype(np.int32)

    def is_image(self, tokens):
        tokens = np.asarray(tokens)
        return (tokens >= self.image_offset) & (tokens < self.vocab_size)

    def save(self, directory: str) -> str:
        path = fileio.join(directory, VOCAB_FILE)
        with fileio.open(path, "w") as f:
            json.dump(dataclasses.asdict(self), f, indent=2)
        return path

    @classmethod
    def load(cls, directory: str) -> VocabLayout:
        path = fileio.join(directory, VOCAB_FILE)
        if not fileio.exists(path):
            raise PathNotFoundError(f"{path}: no vocabulary layout (written by import-hf)")
        with fileio.open(path) as f:
            data = json.load(f)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise InputError(f"{path}: unknown keys {unknown}")
        return cls(**data)
