"""Fixtures for data tests: a hand-checkable character tokenizer, a tiny trained one
(builders in tests/tiny.py)."""

import pytest

from tests.tiny import CharTokenizer, save_sentencepiece
from tests.tiny import shapes_corpus as _shapes_corpus


@pytest.fixture(scope="session")
def char_tokenizer():
    return CharTokenizer()


@pytest.fixture(scope="session")
def shapes_corpus():
    """Deterministic training text: shapes-world documents plus a little odd text."""
    return _shapes_corpus()


@pytest.fixture(scope="session")
def sp_dir(tmp_path_factory, shapes_corpus):
    """Directory of a 400-piece Gemma-style SentencePiece tokenizer trained on the corpus."""
    directory = str(tmp_path_factory.mktemp("sp_tokenizer"))
    save_sentencepiece(directory, shapes_corpus)
    return directory
