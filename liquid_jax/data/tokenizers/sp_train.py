"""Trains a small Gemma-style SentencePiece model from text (used by the demo and tests).

The layout mirrors Gemma's ``tokenizer.model``: ``<pad>`` 0, ``<eos>`` 1, ``<bos>`` 2,
``<unk>`` 3, ``<mask>`` 4, then the reserved ``<unused0..2>`` slots (which
``SentencePieceTokenizer`` renames to ``<boi>``, ``<eoi>``, ``<unconditional>``, the
same path a real Gemma tokenizer takes), the chat-turn tokens, 256 byte-fallback pieces
and the learned pieces. No dummy-prefix space, no normalisation, digits split: the
settings Gemma uses, so HF's ``GemmaTokenizer`` encodes the exported file identically.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence

import sentencepiece as spm

from liquid_jax import fileio
from liquid_jax.data.tokenizers.base import (
    END_OF_TURN,
    GEMMA_RESERVED_SLOTS,
    SP_MODEL_FILE,
    START_OF_TURN,
)
from liquid_jax.data.tokenizers.sp import SentencePieceTokenizer
from liquid_jax.errors import ConfigError, InputError

_NUM_BYTE_PIECES = 256


def train_sentencepiece(
    text_iterator: Iterable[str],
    vocab_size: int,
    out_dir: str | None = None,
    *,
    model_type: str = "bpe",
    reserved_slots: Sequence[str] = GEMMA_RESERVED_SLOTS,
    extra_symbols: Sequence[str] = ("<mask>", START_OF_TURN, END_OF_TURN),
    byte_fallback: bool = True,
    max_sentence_length: int = 8192,
) -> SentencePieceTokenizer:
    """Trains a SentencePiece model; saves it to ``out_dir`` when given.

    Args:
      text_iterator: training documents (each one "sentence"; newlines are kept).
      vocab_size: total pieces, before <boi>/<eoi>/<unconditional> are placed (they
        reuse ``reserved_slots``, so the final vocab_size is the same). Must exceed the
        control + user pieces + 256 byte pieces when ``byte_fallback``.
      out_dir: directory for ``tokenizer.model``, ``tokenizer_config.json`` and
        ``liquid_text_vocab.json``; None to keep it in memory only.
      model_type: "bpe" (Gemma's) or "unigram".
      reserved_slots: user-defined placeholder pieces; empty to exercise the "append" path.
      extra_symbols: more user-defined pieces (``<mask>`` keeps HF's GemmaTokenizer from
        appending one of its own; the turn tokens serve the chat format).

    Training is single-threaded over the input in order, so it is deterministic.
    """
    user_symbols = [s for s in extra_symbols if s == "<mask>"]
    user_symbols += list(reserved_slots) + [s for s in extra_symbols if s != "<mask>"]
    minimum = 4 + len(user_symbols) + (_NUM_BYTE_PIECES if byte_fallback else 0) + 1
    if vocab_size < minimum:
        raise ConfigError(
            f"train_sentencepiece: vocab_size={vocab_size} is too small; control, user and "
            f"byte pieces alone take {minimum - 1}"
        )
    model = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(text_iterator),
            model_writer=model,
            vocab_size=vocab_size,
            model_type=model_type,
            pad_id=0,
            eos_id=1,
            bos_id=2,
            unk_id=3,
            pad_piece="<pad>",
            eos_piece="<eos>",
            bos_piece="<bos>",
            unk_piece="<unk>",
            user_defined_symbols=user_symbols,
            byte_fallback=byte_fallback,
            add_dummy_prefix=False,
            remove_extra_whitespaces=False,
            normalization_rule_name="identity",
            split_digits=True,
            allow_whitespace_only_pieces=True,
            character_coverage=1.0,
            max_sentence_length=max_sentence_length,
            hard_vocab_limit=False,  # a tiny corpus may not support vocab_size pieces
            num_threads=1,
            minloglevel=2,
        )
    except RuntimeError as e:
        raise InputError(f"train_sentencepiece: SentencePiece training failed: {e}") from e
    tokenizer = SentencePieceTokenizer(model.getvalue(), name="train_sentencepiece")
    if out_dir is not None:
        tokenizer.save(out_dir)
        tokenizer.name = fileio.join(out_dir, SP_MODEL_FILE)
    return tokenizer
