"""The released Liquid model as downloaded, against PyTorch on the same weights.

A tiny checkpoint laid out like ``Liquid_V1_7B`` (``tests.tiny.save_release_checkpoint``:
a ``GemmaForCausalLM`` by ``save_pretrained``, a tokenizer with ``<unused0..2>``, no
``liquid_vocab.json``; a taming VQGAN as ``vqgan.yaml`` + ``vqgan.ckpt``) is sampled
through ``load_for_sampling`` and ``liquid-jax sample``, and compared with reference
loops written here over transformers (full forward per token, no cache, float32),
``transformers.ChameleonVQVAE`` (encoding) and ``diffusers.VQModel`` (decoding):
greedy text, greedy captions and guided T2I codes with top-k 1 are equal token for
token, decoded pixels within 1e-3.

Mutations tried: the unconditional rows fed their own previous token (both T2I tests
fail); ``<boi>`` / ``<eoi>`` swapped in the caption prompt (the caption test fails); the
released layout's image offset one higher (loading fails: 63 image codes against the
VQGAN's 64).
"""

import dataclasses
import json
import os
import shutil

import jax.numpy as jnp
import numpy as np
import pytest
import torch
from absl import flags
from flax import nnx
from PIL import Image

from liquid_jax import cli
from liquid_jax.data.formats import CAPTION_PROMPT, T2I_INSTRUCTIONS
from liquid_jax.data.images import load_image
from liquid_jax.errors import InputError
from liquid_jax.export.vqgan_torch import chameleon_vqvae, diffusers_vqmodel
from liquid_jax.models.vqgan_apply import decode_codes, encode_images
from liquid_jax.sample.i2t import i2t_rows
from liquid_jax.sample.loading import load_for_sampling
from tests.tiny import (
    RELEASE_CODES,
    RELEASE_TEXT,
    RELEASE_VQGAN,
    random_taming_state_dict,
    save_release_checkpoint,
    save_taming_vqgan,
)

BOI, EOI, UNCOND, BOS, EOS = 7, 8, 9, 2, 1
LO, HI = RELEASE_TEXT, RELEASE_TEXT + RELEASE_CODES
GRID = (4, 4)  # the VQGAN's 16-pixel resolution


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    """(HF model, VQGAN state dict, model dir, VQGAN dir, HF tokenizer)."""
    import transformers

    model, sd, model_dir, vqgan_dir = save_release_checkpoint(str(tmp_path_factory.mktemp("rel")))
    assert not os.path.exists(os.path.join(model_dir, "liquid_vocab.json"))
    tok = transformers.AutoTokenizer.from_pretrained(model_dir)
    return model, sd, model_dir, vqgan_dir, tok


@pytest.fixture(scope="module")
def sampler(release):
    _, _, model_dir, vqgan_dir, _ = release
    return load_for_sampling(hf_dir=model_dir, vqgan=vqgan_dir, batch_size=2)


def _logits(model, ids) -> np.ndarray:
    with torch.no_grad():
        return model(torch.as_tensor([ids], dtype=torch.long)).logits[0, -1].numpy()


def reference_greedy_text(model, prompt, n, stops=(EOS,)) -> list[int]:
    """Greedy over the text columns [0, len(tokenizer)), as Liquid's I2T / text loops
    mask image codes; stops after a stop id."""
    ids, out = list(prompt), []
    for _ in range(n):
        token = int(np.argmax(_logits(model, ids)[:LO]))
        if token in stops:
            break
        out.append(token)
        ids.append(token)
    return out


def reference_cfg_topk1(model, cond, uncond, n, scale) -> np.ndarray:
    """Liquid's T2I step with top-k 1: guided = u + s (c - u) over the code columns,
    the best code fed to both rows."""
    cond, uncond, out = list(cond), list(uncond), []
    for _ in range(n):
        c, u = _logits(model, cond)[LO:HI], _logits(model, uncond)[LO:HI]
        token = LO + int(np.argmax(u + scale * (c - u)))
        out.append(token - LO)
        cond.append(token)
        uncond.append(token)
    return np.asarray(out, np.int32)


def test_layout_comes_from_the_tokenizer_and_config(sampler):
    layout = sampler.layout
    assert (layout.text_vocab_size, layout.num_image_codes) == (RELEASE_TEXT, RELEASE_CODES)
    assert (layout.boi_id, layout.eoi_id, layout.unconditional_id) == (BOI, EOI, UNCOND)
    assert (layout.bos_id, layout.eos_id) == (BOS, EOS)
    assert sampler.vqgan.config.n_embed == RELEASE_CODES


def test_greedy_text_equals_transformers(release, sampler):
    model, _, _, _, tok = release
    prompt = "w3 w1 The image"
    ids = [BOS, *tok(prompt, add_special_tokens=False).input_ids]
    with torch.no_grad():  # the logits themselves first
        want = model(torch.as_tensor([ids])).logits[0].numpy()
    ours = nnx.merge(sampler.decoder.graphdef, sampler.decoder.state)
    got = np.asarray(ours(jnp.asarray([ids], jnp.int32)))[0, :, :HI]
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)
    ref = reference_greedy_text(model, ids, 12)
    assert len(ref) >= 3  # not stopped at once
    assert sampler.text(prompt, max_new_tokens=12) == [sampler.tokenizer.decode(ref)]


def test_greedy_caption_equals_transformers(release, sampler, tmp_path):
    model, sd, _, _, tok = release
    rng = np.random.default_rng(3)
    path = tmp_path / "image.png"
    Image.fromarray(rng.integers(0, 255, (20, 24, 3), np.uint8)).save(path)
    pixels = load_image(str(path), 16)  # resize + center crop, as for training
    with torch.no_grad():
        out = chameleon_vqvae(sd, RELEASE_VQGAN).encode(
            torch.from_numpy(pixels.transpose(2, 0, 1)[None].copy())
        )
    codes = out.image_tokens.numpy().reshape(GRID)
    np.testing.assert_array_equal(np.asarray(encode_images(sampler.vqgan, pixels[None]))[0], codes)
    assert len(np.unique(codes)) > 3
    caption = tok(CAPTION_PROMPT, add_special_tokens=False).input_ids
    prompt = [BOS, BOI, *(codes.reshape(-1) + LO), EOI, *caption]
    assert i2t_rows(sampler.tokenizer, sampler.layout, codes, None).tolist() == prompt
    ref = reference_greedy_text(model, prompt, 10)
    assert len(ref) >= 3
    assert sampler.i2t(str(path), max_new_tokens=10) == [sampler.tokenizer.decode(ref)]


@pytest.fixture(scope="module")
def t2i_reference(release):
    """(caption, scale, codes int32[16]) of the reference's guided top-k 1 loop."""
    model, _, _, _, tok = release
    caption, scale = "w5 w9 w2", 3.0
    cond = [BOS, *tok(caption + T2I_INSTRUCTIONS[0], add_special_tokens=False).input_ids, BOI]
    codes = reference_cfg_topk1(model, cond, [BOS, UNCOND, BOI], GRID[0] * GRID[1], scale)
    plain = reference_cfg_topk1(model, cond, [BOS, UNCOND, BOI], GRID[0] * GRID[1], 1.0)
    assert not np.array_equal(codes, plain)  # guidance changes the codes here
    return caption, scale, codes


def test_t2i_topk1_with_cfg_equals_the_reference(release, sampler, t2i_reference):
    _, sd, _, _, _ = release
    caption, scale, want = t2i_reference
    out = sampler.t2i(caption, cfg_scale=scale, top_k=1, seed=5)
    np.testing.assert_array_equal(out.codes.reshape(-1), want)
    pixels = np.asarray(decode_codes(sampler.vqgan, out.codes))
    with torch.no_grad():
        ref = diffusers_vqmodel(sd, RELEASE_VQGAN).decode(
            torch.from_numpy(want.astype(np.int64)),
            force_not_quantize=True,
            shape=(1, *GRID, RELEASE_VQGAN.embed_dim),
        )
    np.testing.assert_allclose(pixels, ref.sample.numpy().transpose(0, 2, 3, 1), atol=1e-3, rtol=0)


def test_liquid_jax_sample_reads_the_release(release, t2i_reference, tmp_path, monkeypatch):
    """``liquid-jax sample --hf_dir MODEL --vqgan CHAMELEON`` (in this process)."""
    _, _, model_dir, vqgan_dir, _ = release
    caption, scale, want = t2i_reference
    monkeypatch.setattr("sys.argv", ["pytest"])
    out = tmp_path / "out"
    argv = ["liquid-jax", "sample", f"--hf_dir={model_dir}", f"--vqgan={vqgan_dir}",
            "--task=t2i", f"--prompt={caption}", "--num_samples=1", f"--cfg={scale}",
            "--top_k=1", "--dtype=float32", f"--out={out}"]  # fmt: skip
    flags.FLAGS.unparse_flags()
    try:
        with pytest.raises(SystemExit) as exit_info:
            cli.run(argv)
    finally:
        flags.FLAGS.unparse_flags()
        flags.FLAGS.mark_as_parsed()
    assert exit_info.value.code in (0, None)
    np.testing.assert_array_equal(np.load(out / "codes.npy").reshape(-1), want)
    assert Image.open(out / "sample_000.png").size == (16, 16)


def test_errors_name_what_does_not_fit(release, tmp_path):
    _, _, model_dir, vqgan_dir, _ = release
    other = str(tmp_path / "vqgan32")
    config = dataclasses.replace(RELEASE_VQGAN, n_embed=32)
    save_taming_vqgan(other, random_taming_state_dict(config), config)
    with pytest.raises(InputError, match="VQGAN has 32 codes but the model in .* has 64 image"):
        load_for_sampling(hf_dir=model_dir, vqgan=other)
    # config.json and tokenizer only: the layout is checked before any weight is read.
    for vocab, message in [(30, "tokenizer has 40 tokens but config.json's vocab_size is "
                                "only 30"), (40, "a text-only model")]:  # fmt: skip
        bad = tmp_path / f"bad{vocab}"
        shutil.copytree(model_dir, bad)
        config_json = json.loads((bad / "config.json").read_text())
        (bad / "config.json").write_text(json.dumps({**config_json, "vocab_size": vocab}))
        with pytest.raises(InputError, match=message):
            load_for_sampling(hf_dir=str(bad))
    with pytest.raises(InputError, match="neither <boi>/<eoi>/<unconditional> nor <x>/<y>/<z>"):
        load_for_sampling(hf_dir=model_dir, special_tokens=("<x>", "<y>", "<z>"))


def test_a_liquid_vocab_json_wins_over_the_derived_layout(release, tmp_path):
    _, _, model_dir, _, _ = release
    copy = tmp_path / "with_layout"
    shutil.copytree(model_dir, copy)
    layout = load_for_sampling(hf_dir=model_dir).layout
    dataclasses.replace(layout, text_vocab_size=72, num_image_codes=32).save(str(copy))
    got = load_for_sampling(hf_dir=str(copy)).layout
    assert (got.text_vocab_size, got.num_image_codes, got.boi_id) == (72, 32, BOI)
