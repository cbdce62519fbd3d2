"""Fixtures for data tests: a hand-checkable character tokenizer, a tiny trained one."""

import string

import numpy as np
import pytest

from liquid_jax.data.shapes.examples import text_record
from liquid_jax.data.tokenizers.sp_train import train_sentencepiece


class CharTokenizer:
    """A ``TextTokenizer`` with one id per printable character, for token-exact tests.

    Ids: 0 <pad>, 1 <eos>, 2 <bos>, 3 <boi>, 4 <eoi>, 5 <unconditional>,
    6 <start_of_turn>, 7 <end_of_turn>, then ``8 + string.printable.index(c)``.
    Special names are not parsed from text (the formats place them by id).
    """

    SPECIALS = (
        "<pad>",
        "<eos>",
        "<bos>",
        "<boi>",
        "<eoi>",
        "<unconditional>",
        "<start_of_turn>",
        "<end_of_turn>",
    )
    CHARS = string.printable
    pad_id, eos_id, bos_id, boi_id, eoi_id, unconditional_id = range(6)
    vocab_size = len(SPECIALS) + len(CHARS)
    name = "CharTokenizer"

    def encode(self, text):
        return [len(self.SPECIALS) + self.CHARS.index(c) for c in text]

    def decode(self, ids):
        return "".join(
            self.CHARS[i - len(self.SPECIALS)] if i >= len(self.SPECIALS) else self.SPECIALS[i]
            for i in ids
            if i not in (self.pad_id, self.bos_id, self.eos_id)
        )

    def token_to_id(self, token):
        return self.SPECIALS.index(token) if token in self.SPECIALS else None

    def id_to_token(self, token_id):
        return self.decode([token_id])

    def save(self, directory):
        raise NotImplementedError


@pytest.fixture(scope="session")
def char_tokenizer():
    return CharTokenizer()


@pytest.fixture(scope="session")
def shapes_corpus():
    """Deterministic training text: shapes-world documents plus a little odd text."""
    docs = [text_record(0, "train", i)["text"] for i in range(1500)]
    rng = np.random.default_rng(0)
    extra = ["".join(rng.choice(list(string.printable), size=40)) for _ in range(50)]
    return docs + extra


@pytest.fixture(scope="session")
def sp_dir(tmp_path_factory, shapes_corpus):
    """Directory of a 400-piece Gemma-style SentencePiece tokenizer trained on the corpus."""
    directory = str(tmp_path_factory.mktemp("sp_tokenizer"))
    train_sentencepiece(shapes_corpus, 400, directory)
    return directory
