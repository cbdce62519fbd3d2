"""I2T / VQA and text generation through ``Sampler``: prompts, stopping, decoding."""

import numpy as np
from PIL import Image

from liquid_jax.data.formats import i2t_prompt, vqa_prompt
from liquid_jax.models.vqgan_apply import encode_images
from liquid_jax.sample.decode_loop import DecodeSpec, SamplingParams
from liquid_jax.sample.i2t import load_pixels
from liquid_jax.sample.prompts import left_pad
from liquid_jax.sample.text import cut_at_stop, text_prompt


def _image_file(tmp_path, seed=0, size=(24, 20)):
    rng = np.random.default_rng(seed)
    path = tmp_path / f"img{seed}.png"
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), np.uint8)).save(path)
    return str(path)


def _greedy_reference(sampler, prompt, stops, n=128):
    layout = sampler.layout
    spec = DecodeSpec(n, (0, layout.text_vocab_size), eos_ids=stops, pad_id=layout.pad_id)
    out = sampler.decoder.generate(left_pad([prompt], 0), [0], 0, spec, SamplingParams.of())
    return sampler.tokenizer.decode(cut_at_stop(out.tokens[0], stops))


def test_caption_and_vqa_use_liquid_prompts(sampler, tmp_path):
    layout, tok = sampler.layout, sampler.tokenizer
    path = _image_file(tmp_path)
    pixels = load_pixels(path, 16)
    codes = np.asarray(encode_images(sampler.vqgan, pixels[None]))[0]
    assert codes.shape == (4, 4)
    caption = sampler.i2t([path], max_new_tokens=12)
    stops = (layout.eos_id,)
    assert caption == [_greedy_reference(sampler, i2t_prompt(tok, layout, codes), stops, 12)]
    answer = sampler.i2t(path, "w3 w4", max_new_tokens=12)
    end = tok.token_to_id("<end_of_turn>")
    ref = _greedy_reference(sampler, vqa_prompt(tok, layout, "w3 w4", codes), (1, end), 12)
    assert answer == [ref]


def test_i2t_accepts_arrays_and_several_images(sampler, tmp_path):
    paths = [_image_file(tmp_path, s) for s in range(3)]
    uint8 = np.asarray(Image.open(paths[1]).convert("RGB"))
    floats = load_pixels(paths[2], 16)
    out = sampler.i2t([paths[0], uint8, floats], ["w1", None, "w2"], max_new_tokens=6)
    assert len(out) == 3 and all(isinstance(t, str) for t in out)
    assert out[1] == sampler.i2t(paths[1], max_new_tokens=6)[0]


def test_text_plain_and_chat(sampler):
    layout, tok = sampler.layout, sampler.tokenizer
    plain = sampler.text(["w1 w2 w3", "w9"], max_new_tokens=10)
    assert plain[0] == _greedy_reference(sampler, text_prompt(tok, layout, "w1 w2 w3"), (1,), 10)
    start, end = tok.token_to_id("<start_of_turn>"), tok.token_to_id("<end_of_turn>")
    chat = text_prompt(tok, layout, "w5", chat=True)
    assert list(chat) == [layout.bos_id, start, 3, tok.encode("w5")[0], end, start, 3]
    replies = sampler.text("w5", chat=True, max_new_tokens=10)
    assert replies == [_greedy_reference(sampler, chat, (1, end), 10)]


def test_sampled_text_is_reproducible_per_sample(sampler):
    kw = dict(max_new_tokens=8, temperature=1.0, top_k=20, top_p=0.9, seed=4, num_samples=3)
    a = sampler.text(["w1", "w2"], batch_size=6, **kw)
    b = sampler.text(["w1", "w2"], batch_size=1, **kw)
    assert a == b and len(a) == 6
    assert len(set(a)) > 1


def test_cut_at_stop():
    assert cut_at_stop(np.asarray([5, 6, 1, 0, 0]), (1,)) == [5, 6]
    assert cut_at_stop(np.asarray([5, 6]), (1,)) == [5, 6]
