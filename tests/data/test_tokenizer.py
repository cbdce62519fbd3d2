"""Text tokenizers: SentencePiece and HF tokenizers back-ends, special-token slots, HF files."""

import json
import os

import numpy as np
import pytest
from tokenizers import Tokenizer, models, pre_tokenizers

from liquid_jax.data.tokenizers.base import (
    SPECIAL_TOKENS,
    TextTokenizer,
    vocab_layout,
)
from liquid_jax.data.tokenizers.files import TokenizerFiles
from liquid_jax.data.tokenizers.hf import HFTokenizer, train_bpe_tokenizer
from liquid_jax.data.tokenizers.load import load_tokenizer
from liquid_jax.data.tokenizers.sp import SentencePieceTokenizer
from liquid_jax.data.tokenizers.sp_train import train_sentencepiece

ODD_TEXTS = [
    "a small red circle above a large blue square",
    "Image Size: Width is 512 Height is 384. Generate an image.",
    "  two  spaces\nand a newline\t tab",
    "digits 1234567890 and ünïcödé 漢字 🙂",
    "<boi> inline names <eoi><unconditional>",
    "",
]


def _ids_of(tok):
    return [tok.boi_id, tok.eoi_id, tok.unconditional_id]


# ---- SentencePiece ------------------------------------------------------------------------


def test_sentencepiece_reuses_reserved_slots(sp_dir):
    tok = load_tokenizer(sp_dir)
    assert isinstance(tok, SentencePieceTokenizer) and isinstance(tok, TextTokenizer)
    # Gemma layout: pad 0, eos 1, bos 2, unk 3, <mask> 4, <unused0..2> -> 5, 6, 7.
    assert (tok.pad_id, tok.eos_id, tok.bos_id) == (0, 1, 2)
    assert _ids_of(tok) == [5, 6, 7]
    assert tok.vocab_size == 400  # reused: the text vocabulary did not grow
    assert [tok.id_to_token(i) for i in _ids_of(tok)] == list(SPECIAL_TOKENS)
    assert tok.token_to_id("<unused0>") is None
    assert tok.encode("<boi><eoi><unconditional>") == [5, 6, 7]
    with open(os.path.join(sp_dir, "liquid_text_vocab.json")) as f:
        meta = json.load(f)
    assert meta["kind"] == "sentencepiece" and meta["boi_id"] == 5


def test_sentencepiece_appends_without_reserved_slots(shapes_corpus):
    tok = train_sentencepiece(shapes_corpus, 400, reserved_slots=())
    assert tok.special_tokens_how == "append"
    assert tok.vocab_size == 403  # grew by 3, at the end
    assert _ids_of(tok) == [400, 401, 402]
    assert tok.encode("x<eoi>") == tok.encode("x") + [401]


def test_sentencepiece_save_load_round_trip(sp_dir, tmp_path, shapes_corpus):
    tok = load_tokenizer(sp_dir)
    tok.save(str(tmp_path))
    again = load_tokenizer(str(tmp_path))
    assert again.special_tokens_how == "present"
    assert again.model_proto == tok.model_proto
    for text in shapes_corpus[:200] + ODD_TEXTS:
        ids = tok.encode(text)
        assert again.encode(text) == ids
        assert tok.decode(ids) == text  # byte fallback: nothing is lost
    assert tok.decode([tok.bos_id, *tok.encode("hi"), tok.eos_id, tok.pad_id]) == "hi"
    with pytest.raises(ValueError, match="outside the text vocabulary"):
        tok.decode([tok.vocab_size + 3])


def test_sentencepiece_training_is_deterministic(shapes_corpus):
    a = train_sentencepiece(shapes_corpus[:300], 350)
    b = train_sentencepiece(shapes_corpus[:300], 350)
    assert a.model_proto == b.model_proto
    with pytest.raises(ValueError, match="too small"):
        train_sentencepiece(shapes_corpus[:10], 100)


def test_partial_special_tokens_are_refused(sp_dir):
    from sentencepiece import sentencepiece_model_pb2

    proto = sentencepiece_model_pb2.ModelProto()
    with open(os.path.join(sp_dir, "tokenizer.model"), "rb") as f:
        proto.ParseFromString(f.read())
    proto.pieces[6].piece = "<something>"  # <eoi> gone, <boi> and <unconditional> kept
    with pytest.raises(ValueError, match="refusing to mix"):
        SentencePieceTokenizer(proto.SerializeToString())


# ---- HF tokenizers ------------------------------------------------------------------------


def test_hf_tokenizer_appends_when_no_reserved_slots(shapes_corpus, tmp_path):
    tok = train_bpe_tokenizer(shapes_corpus, 500)  # Qwen-like: only <|endoftext|>
    assert tok.special_tokens_how == "append"
    base = tok.vocab_size - 3
    assert _ids_of(tok) == [base, base + 1, base + 2]
    assert tok.bos_id == tok.eos_id == tok.token_to_id("<|endoftext|>")
    # A bare HF directory (no liquid metadata) loads through the tokenizer.json path.
    tok._tok.save(str(tmp_path / "tokenizer.json"))
    bare = load_tokenizer(str(tmp_path))
    assert isinstance(bare, HFTokenizer) and bare.vocab_size == tok.vocab_size
    assert _ids_of(bare) == _ids_of(tok)


def test_hf_tokenizer_reuses_slots_and_round_trips(shapes_corpus, tmp_path):
    specials = (
        "<pad>",
        "<eos>",
        "<bos>",
        "<unused0>",
        "<unused1>",
        "<unused2>",
        "<start_of_turn>",
        "<end_of_turn>",
    )
    tok = train_bpe_tokenizer(shapes_corpus, 500, special_tokens=specials)
    assert tok.special_tokens_how == "reuse"
    assert _ids_of(tok) == [3, 4, 5] and (tok.pad_id, tok.eos_id, tok.bos_id) == (0, 1, 2)
    assert tok.token_to_id("<unused0>") is None
    tok.save(str(tmp_path))
    again = load_tokenizer(str(tmp_path))
    assert isinstance(again, HFTokenizer) and again.special_tokens_how == "present"
    assert again.vocab_size == tok.vocab_size and _ids_of(again) == [3, 4, 5]
    for text in shapes_corpus[:100] + ODD_TEXTS:
        assert again.encode(text) == tok.encode(text)
        if "<" not in text:
            assert tok.decode(tok.encode(text)) == text
    assert tok.encode("<boi>") == [3]


def test_image_token_ids_follow_the_text_vocab(sp_dir):
    tok = load_tokenizer(sp_dir)
    layout = vocab_layout(tok, num_image_codes=64)
    assert layout.text_vocab_size == tok.vocab_size == 400
    np.testing.assert_array_equal(layout.image_tokens([0, 1, 63]), [400, 401, 463])
    assert layout.vocab_size == 464
    assert (layout.boi_id, layout.eoi_id, layout.unconditional_id) == (5, 6, 7)
    assert (layout.bos_id, layout.eos_id, layout.pad_id) == (2, 1, 0)


# ---- HF transformers loads what we export ---------------------------------------------------


@pytest.mark.parametrize("backend", ["sentencepiece", "hf_tokenizers"])
def test_transformers_loads_exported_tokenizer(backend, sp_dir, shapes_corpus, tmp_path):
    transformers = pytest.importorskip("transformers")
    if backend == "sentencepiece":
        tok = load_tokenizer(sp_dir)
    else:
        tok = train_bpe_tokenizer(shapes_corpus, 500)
    tok.save(str(tmp_path))
    hf = transformers.AutoTokenizer.from_pretrained(str(tmp_path))
    assert len(hf) == tok.vocab_size
    assert hf.convert_tokens_to_ids(list(SPECIAL_TOKENS)) == _ids_of(tok)
    assert (hf.bos_token_id, hf.eos_token_id, hf.pad_token_id) == (
        tok.bos_id,
        tok.eos_id,
        tok.pad_id,
    )
    for text in shapes_corpus[:100] + ODD_TEXTS:
        ids = tok.encode(text)
        assert hf(text, add_special_tokens=False)["input_ids"] == ids, text
        if "<" not in text:
            assert hf.decode(ids) == tok.decode(ids)


# ---- the tokenizer files as data (import-hf's view) ----------------------------------------


def _word_level_json(names: list[str]) -> str:
    """An unedited tokenizer.json (as a downloaded model ships it)."""
    tok = Tokenizer(models.WordLevel({n: i for i, n in enumerate(names)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return tok.to_str()


@pytest.mark.parametrize(
    "extra, how",
    [(["<unused0>", "<unused1>", "<unused2>"], "reuse"), (["x", "y", "z"], "append")],
)
def test_tokenizer_files_place_specials_as_the_back_end_does(tmp_path, extra, how):
    """One rule: the files' table gives the ids the loaded back-end gives, before and
    after the back-end saved its edited files."""
    src, saved = str(tmp_path / "src"), str(tmp_path / "saved")
    os.makedirs(src)
    names = ["<pad>", "<eos>", "<bos>", "<unk>", *extra] + [f"w{i}" for i in range(20)]
    with open(os.path.join(src, "tokenizer.json"), "w") as f:
        f.write(_word_level_json(names))
    tok = HFTokenizer.load(src)
    assert TokenizerFiles(src).special_token_ids() == (how, tuple(_ids_of(tok)))
    tok.save(saved)
    assert TokenizerFiles(saved).special_token_ids() == ("present", tuple(_ids_of(tok)))


def test_tokenizer_files_read_a_sentencepiece_model(sp_dir):
    files = TokenizerFiles(sp_dir)
    tok = load_tokenizer(sp_dir)
    assert len(files) == tok.vocab_size == 400
    assert files.special_token_ids() == ("present", tuple(_ids_of(tok)))
    assert files.get("<start_of_turn>") == tok.token_to_id("<start_of_turn>")


def test_tokenizer_files_refuse_some_specials_as_the_back_end_does(tmp_path):
    names = ["<pad>", "<eos>", "<bos>", "<unk>", "<boi>"] + [f"w{i}" for i in range(20)]
    with open(tmp_path / "tokenizer.json", "w") as f:
        f.write(_word_level_json(names))
    for load in (TokenizerFiles, HFTokenizer.load):
        with pytest.raises(ValueError, match="refusing to mix"):
            tokenizer = load(str(tmp_path))
            tokenizer.special_token_ids()
