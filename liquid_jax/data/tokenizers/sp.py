"""SentencePiece back-end of ``TextTokenizer`` (Gemma's ``tokenizer.model`` format).

The special tokens are written into the model proto itself (reserved slots renamed, or
pieces appended, as ``USER_DEFINED`` pieces), so SentencePiece, our wrapper and the
exported HF ``GemmaTokenizer`` all agree on them without a side table.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import sentencepiece as spm
from sentencepiece import sentencepiece_model_pb2 as sp_pb2

from liquid_jax import fileio
from liquid_jax.data.tokenizers.base import (
    GEMMA_RESERVED_SLOTS,
    HF_CONFIG_FILE,
    SP_MODEL_FILE,
    SPECIAL_TOKENS,
    check_decodable,
    plan_special_tokens,
    read_json,
    write_meta,
)
from liquid_jax.errors import InputError, PathNotFoundError

_USER_DEFINED = sp_pb2.ModelProto.SentencePiece.USER_DEFINED
# HF keys that describe the *old* vocabulary and would contradict the edited proto.
_STALE_HF_KEYS = ("added_tokens_decoder", "tokenizer_file")


def parse_model_proto(model_proto: bytes, name: str) -> sp_pb2.ModelProto:
    """The ``ModelProto`` in the bytes of a ``tokenizer.model``; ValueError naming ``name``."""
    proto = sp_pb2.ModelProto()
    try:
        proto.ParseFromString(model_proto)
    except Exception as e:  # protobuf raises its own DecodeError
        raise InputError(f"{name}: not a SentencePiece model: {e}") from e
    return proto


class SentencePieceTokenizer:
    """``TextTokenizer`` over a SentencePiece model proto.

    Args:
      model_proto: serialized ``ModelProto`` (the bytes of a ``tokenizer.model``).
      reserved_slots: pieces renamed to ``<boi>``, ``<eoi>``, ``<unconditional>`` when the
        model has them and lacks the canonical names.
      hf_config: the source directory's ``tokenizer_config.json`` (kept on save, e.g. a
        chat template), or None.
      name: where the model came from, for error messages.
    """

    KIND = "sentencepiece"

    def __init__(
        self,
        model_proto: bytes,
        *,
        reserved_slots: Sequence[str] = GEMMA_RESERVED_SLOTS,
        hf_config: dict | None = None,
        name: str = "<sentencepiece proto>",
    ):
        self.name = name
        proto = parse_model_proto(model_proto, name)
        index = {p.piece: i for i, p in enumerate(proto.pieces)}
        self.special_tokens_how, ids = plan_special_tokens(index.get, reserved_slots)
        if self.special_tokens_how == "reuse":
            for canonical, slot_id in zip(SPECIAL_TOKENS, ids.values()):
                proto.pieces[slot_id].piece = canonical
                # USER_DEFINED: SentencePiece then parses the name in text, like HF does.
                proto.pieces[slot_id].type = _USER_DEFINED
        elif self.special_tokens_how == "append":
            for canonical in SPECIAL_TOKENS:
                proto.pieces.add(piece=canonical, score=0.0, type=_USER_DEFINED)
        self._proto = proto.SerializeToString()
        self._sp = spm.SentencePieceProcessor(model_proto=self._proto)
        self.hf_config = dict(hf_config or {})

        self.vocab_size = self._sp.get_piece_size()
        self.boi_id, self.eoi_id, self.unconditional_id = (self._require(t) for t in SPECIAL_TOKENS)
        self.bos_id = self._control_id(self._sp.bos_id(), ("<bos>", "<s>"), "bos")
        self.eos_id = self._control_id(self._sp.eos_id(), ("<eos>", "</s>"), "eos")
        self.pad_id = self._control_id(self._sp.pad_id(), ("<pad>",), "pad", self.eos_id)

    # ---- construction -------------------------------------------------------------------

    @classmethod
    def load(cls, directory: str, **kwargs) -> SentencePieceTokenizer:
        """Loads ``directory/tokenizer.model`` (+ ``tokenizer_config.json`` if present)."""
        path = fileio.join(directory, SP_MODEL_FILE)
        if not fileio.exists(path):
            raise PathNotFoundError(f"{path}: no SentencePiece model")
        proto = fileio.read_bytes(path)  # parsed from bytes: works for URLs too
        config_path = fileio.join(directory, HF_CONFIG_FILE)
        config = read_json(config_path) if fileio.exists(config_path) else None
        return cls(proto, hf_config=config, name=path, **kwargs)

    def _require(self, token: str) -> int:
        token_id = self.token_to_id(token)
        if token_id is None:
            raise ValueError(f"{self.name}: piece {token!r} missing")
        return token_id

    def _control_id(self, sp_id: int, names, what: str, default: int | None = None) -> int:
        if sp_id >= 0:
            return sp_id
        for name in names:
            token_id = self.token_to_id(name)
            if token_id is not None:
                return token_id
        if default is not None:
            return default
        raise InputError(f"{self.name}: the model defines no {what} token (tried {names})")

    # ---- TextTokenizer --------------------------------------------------------------------

    def encode(self, text: str) -> list[int]:
        """text -> ids (no <bos>/<eos>); special-token names in the text become their ids."""
        return self._sp.encode(text)

    def decode(self, ids: Sequence[int]) -> str:
        """ids -> text; drops <bos>/<eos>/<pad>; raises on ids outside the text vocab."""
        drop = {self.bos_id, self.eos_id, self.pad_id}
        return self._sp.decode([i for i in check_decodable(ids, self.vocab_size) if i not in drop])

    def token_to_id(self, token: str) -> int | None:
        # piece_to_id answers unk for unknown pieces: check the round trip.
        token_id = self._sp.piece_to_id(token)
        return token_id if self._sp.id_to_piece(token_id) == token else None

    def id_to_token(self, token_id: int) -> str:
        check_decodable([token_id], self.vocab_size)
        return self._sp.id_to_piece(int(token_id))

    def __len__(self) -> int:
        return self.vocab_size

    @property
    def model_proto(self) -> bytes:
        """The edited model (special tokens in place), as written to ``tokenizer.model``."""
        return self._proto

    def save(self, directory: str) -> None:
        """Writes ``tokenizer.model``, an HF ``tokenizer_config.json`` and our metadata."""
        fileio.makedirs(directory)
        fileio.write_bytes(fileio.join(directory, SP_MODEL_FILE), self._proto)
        config = {k: v for k, v in self.hf_config.items() if k not in _STALE_HF_KEYS}
        piece = self._sp.id_to_piece
        config.setdefault("tokenizer_class", "GemmaTokenizer")
        config.update(
            bos_token=piece(self.bos_id),
            eos_token=piece(self.eos_id),
            pad_token=piece(self.pad_id),
            add_bos_token=True,
            add_eos_token=False,
        )
        if self._sp.unk_id() >= 0:
            config["unk_token"] = piece(self._sp.unk_id())
        with fileio.open(fileio.join(directory, HF_CONFIG_FILE), "w") as f:
            json.dump(config, f, indent=2)
        write_meta(self, directory, self.KIND, self.special_tokens_how)
