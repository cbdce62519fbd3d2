"""Vocabulary expansion for Liquid: mean-initialised rows, special tokens, import/export."""

import json
import os
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from liquid_jax.data.vocab import VocabLayout
from liquid_jax.export import expand_vocab, export_hf, import_hf, load_hf, save_hf
from liquid_jax.models import Transformer

transformers = pytest.importorskip("transformers")
from tests.tiny import save_word_tokenizer, tiny_spec  # noqa: E402

CODES = 40


def tiny(family, **kw):
    fields = dict(num_kv_heads=1 if family == "gemma" else 2, bos_token_id=2, eos_token_id=1,
                  pad_token_id=0)  # fmt: skip
    return Transformer(tiny_spec(family, **{**fields, **kw}), nnx.Rngs(5))


@nnx.jit
def forward(model, tokens):
    return model(tokens)


TOKENS = jnp.asarray(np.random.RandomState(0).randint(0, 300, (2, 8)), jnp.int32)


@pytest.mark.parametrize("tied", [True, False])
def test_expand_vocab_adds_mean_rows_and_keeps_text_logits(tied):
    model = tiny("qwen2", tie_embeddings=tied)
    grown = expand_vocab(model, 300 + CODES)
    assert grown.spec.vocab_size == 340 and grown.spec.padded_vocab_size == 384
    old, new = model.embed_tokens.embedding[...], grown.embed_tokens.embedding[...]
    np.testing.assert_array_equal(new[:300], old[:300])
    np.testing.assert_allclose(
        new[300:340], np.broadcast_to(old[:300].mean(0), (40, 64)), rtol=1e-6, atol=1e-7
    )
    assert not np.any(new[340:])
    before, after = forward(model, TOKENS), forward(grown, TOKENS)
    # Text columns are untouched; each new column's logit is the mean of the old ones.
    np.testing.assert_allclose(after[..., :300], before[..., :300], atol=1e-5, rtol=1e-6)
    np.testing.assert_allclose(
        after[..., 300:340],
        np.broadcast_to(before[..., :300].mean(-1, keepdims=True), (2, 8, 40)),
        atol=1e-4,
        rtol=1e-5,
    )
    assert np.all(after[..., 340:] == -1e9)
    if not tied:
        head = grown.lm_head.kernel[...]
        np.testing.assert_allclose(
            head[:, 300], model.lm_head.kernel[...][:, :300].mean(1), rtol=1e-6, atol=1e-7
        )


def _hf_dir(tmp_path, family, tokenizer_size=None, unused=False, **kw):
    path = tmp_path / "hf"
    save_hf(tiny(family, **kw), str(path))
    if tokenizer_size:
        save_word_tokenizer(str(path), tokenizer_size, unused)
    return str(path)


def test_import_gemma_reuses_unused_slots(tmp_path):
    src = _hf_dir(tmp_path, "gemma", tokenizer_size=300, unused=True)
    out = str(tmp_path / "out")
    layout = import_hf(src, out, image_codes=CODES)
    assert (layout.boi_id, layout.eoi_id, layout.unconditional_id) == (7, 8, 9)
    assert layout.text_vocab_size == 300 and layout.vocab_size == 340
    assert VocabLayout.load(out) == layout
    assert json.loads(Path(os.path.join(out, "config.json")).read_text())["vocab_size"] == 340
    assert {"tokenizer.json", "tokenizer_config.json"} <= set(os.listdir(out))
    before, after = forward(load_hf(src), TOKENS), forward(load_hf(out), TOKENS)
    np.testing.assert_allclose(after[..., :300], before[..., :300], atol=1e-5, rtol=1e-6)
    text_lsm = lambda x: x[..., :300] - np.log(np.exp(x[..., :300]).sum(-1, keepdims=True))
    np.testing.assert_allclose(text_lsm(np.asarray(after)), text_lsm(np.asarray(before)), atol=1e-5)


def test_import_adds_special_tokens_to_a_tokenizer_without_slots(tmp_path):
    src = _hf_dir(tmp_path, "llama", tokenizer_size=290, tie_embeddings=False)
    out = str(tmp_path / "out")
    layout = import_hf(src, out, image_codes=CODES)
    # Ids follow the tokenizer, in the model's spare rows (300 rows > 290 tokens).
    assert (layout.boi_id, layout.eoi_id, layout.unconditional_id) == (290, 291, 292)
    assert layout.text_vocab_size == 300 and layout.image_offset == 300
    tok = transformers.AutoTokenizer.from_pretrained(out)
    assert tok.convert_tokens_to_ids(["<boi>", "<eoi>", "<unconditional>"]) == [290, 291, 292]
    assert tok("w5 <boi> w6 <eoi>").input_ids[1::2] == [290, 291]


def test_import_without_tokenizer_appends_rows(tmp_path):
    src = _hf_dir(tmp_path, "qwen2")
    layout = import_hf(src, str(tmp_path / "out"), image_codes=CODES)
    assert (layout.boi_id, layout.eoi_id, layout.unconditional_id) == (300, 301, 302)
    assert layout.text_vocab_size == 303 and layout.vocab_size == 343
    model = load_hf(str(tmp_path / "out"))
    emb = model.embed_tokens.embedding[...]
    np.testing.assert_allclose(
        emb[300:343], np.broadcast_to(emb[:300].mean(0), (43, 64)), rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize("codes", [0, -5])
def test_import_rejects_non_positive_image_codes(tmp_path, codes):
    with pytest.raises(ValueError, match=f"image_codes={codes}"):
        import_hf(_hf_dir(tmp_path, "qwen2"), str(tmp_path / "out"), image_codes=codes)


def test_import_rejects_a_vocab_smaller_than_the_tokenizer(tmp_path):
    src = _hf_dir(tmp_path, "gemma", tokenizer_size=310, unused=True)
    with pytest.raises(ValueError, match="310 tokens but the model's vocabulary is only 300"):
        import_hf(src, str(tmp_path / "out"), image_codes=CODES)


def test_import_rejects_colliding_special_ids(tmp_path):
    src = _hf_dir(tmp_path, "gemma", tokenizer_size=300, unused=True, pad_token_id=8)
    with pytest.raises(ValueError, match="special token ids collide.*'eoi_id': 8.*'pad_id': 8"):
        import_hf(src, str(tmp_path / "out"), image_codes=CODES)


def test_import_refuses_a_tokenizer_with_only_some_special_tokens(tmp_path):
    src = _hf_dir(tmp_path, "llama", tokenizer_size=290)
    config_path = Path(src, "tokenizer_config.json")
    config = json.loads(config_path.read_text())
    config.setdefault("added_tokens_decoder", {})["290"] = {"content": "<boi>", "special": True}
    config_path.write_text(json.dumps(config))
    with pytest.raises(ValueError, match="hf: tokenizer has .'<boi>'. but not all.*refusing"):
        import_hf(src, str(tmp_path / "out"), image_codes=CODES)


def test_export_round_trip_and_too_small_vocab(tmp_path):
    src = _hf_dir(tmp_path, "gemma", tokenizer_size=300, unused=True)
    liquid = str(tmp_path / "liquid")
    layout = import_hf(src, liquid, image_codes=CODES, dtype=jnp.bfloat16)
    out = export_hf(liquid, str(tmp_path / "exported"))
    assert VocabLayout.load(out) == layout
    config = json.loads(Path(out, "config.json").read_text())
    assert config["torch_dtype"] == "bfloat16"
    a, b = load_hf(liquid), load_hf(out)
    np.testing.assert_array_equal(a.embed_tokens.embedding[...], b.embed_tokens.embedding[...])
    VocabLayout(**{**layout.__dict__, "num_image_codes": CODES + 1}).save(liquid)
    with pytest.raises(ValueError, match="needs 341 tokens.*only 340: too small"):
        export_hf(liquid, str(tmp_path / "again"))


def test_save_hf_copies_a_tokenizer_object(tmp_path):
    save_word_tokenizer(str(tmp_path / "tok"), 300, unused_slots=True)
    tok = transformers.AutoTokenizer.from_pretrained(str(tmp_path / "tok"))
    save_hf(tiny("gemma"), str(tmp_path / "out"), tokenizer=tok)
    again = transformers.AutoTokenizer.from_pretrained(str(tmp_path / "out"))
    assert again.convert_tokens_to_ids("<unused1>") == 8


def test_import_takes_an_already_expanded_model_as_it_is(tmp_path):
    """A released Liquid model (tokenizer + image-code rows, <unused0..2> slots): no rows
    are added, and the layout is the one the release uses."""
    src = _hf_dir(tmp_path, "gemma", tokenizer_size=300, unused=True, vocab_size=300 + CODES)
    out = str(tmp_path / "out")
    layout = import_hf(src, out, image_codes=CODES)
    assert (layout.text_vocab_size, layout.num_image_codes) == (300, CODES)
    assert (layout.boi_id, layout.eoi_id, layout.unconditional_id) == (7, 8, 9)
    assert json.loads(Path(out, "config.json").read_text())["vocab_size"] == 300 + CODES
    np.testing.assert_array_equal(
        load_hf(out).embed_tokens.embedding[...], load_hf(src).embed_tokens.embedding[...]
    )


def test_import_names_the_codes_an_expanded_model_holds(tmp_path):
    """A codebook's worth of rows past the tokenizer but another --image_codes: a one-line
    error naming the count and the command that reads the model directly."""
    src = _hf_dir(tmp_path, "gemma", tokenizer_size=300, unused=True, vocab_size=300 + 1024)
    with pytest.raises(ValueError, match="already holds 1024 image-code rows.*--image_codes=1024"):
        import_hf(src, str(tmp_path / "out"), image_codes=8192)
    assert import_hf(src, str(tmp_path / "out"), image_codes=1024).vocab_size == 1324
