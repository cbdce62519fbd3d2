"""Chat through the tokenizer's own template: ids equal transformers' ``apply_chat_template``.

Tiny byte-level BPE tokenizers carry Gemma-, Qwen2.5- (ChatML, with its default system
turn) and Llama-3-style templates (written here in the families' shapes: role names,
turn tokens, ``trim``, whitespace control); the conversations have several turns, and
an image in a user turn becomes ``<boi>{codes}<eoi>`` where transformers puts the
placeholder text ``<boi><eoi>``.

Mutations tried: rendering without ``trim_blocks`` / ``lstrip_blocks`` (2 cases fail);
the image slot put after the turn's text instead of before it (3 cases fail); template
tokens left to the tokenizer instead of taken by name (the SentencePiece and fallback
cases fail).
"""

import json
import os

import numpy as np
import pytest
import tokenizers
import transformers

from liquid_jax.data.formats import vqa_prompt
from liquid_jax.data.tokenizers.base import vocab_layout
from liquid_jax.data.tokenizers.chat import read_chat_template
from liquid_jax.data.tokenizers.load import load_tokenizer
from liquid_jax.data.tokenizers.sp_train import train_sentencepiece
from liquid_jax.errors import InputError
from liquid_jax.sample.decode_loop import DecodeSpec, SamplingParams
from liquid_jax.sample.prompts import left_pad
from liquid_jax.sample.text import chat_ids, chat_stop_ids, cut_at_stop

GEMMA = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
    "{% endif %}{% if message['role'] == 'assistant' %}{% set role = 'model' %}"
    "{% else %}{% set role = message['role'] %}{% endif %}"
    "{{ '<start_of_turn>' + role + '\\n' + message['content'] | trim + '<end_of_turn>\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<start_of_turn>model\\n' }}{% endif %}"
)
CHATML = """{%- for message in messages %}
    {%- if loop.first and message['role'] != 'system' %}
        {{- '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}
    {%- endif %}
    {{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\\n' }}
{%- endif %}
"""
LLAMA3 = """{{- bos_token }}
{% for message in messages %}
{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' %}
{{ content + message['content'] | trim + '<|eot_id|>' }}
{% endfor %}
{% if add_generation_prompt %}
{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}
{% endif %}
"""
FAMILIES = {
    # name: (special tokens, bos, eos, pad, template, <boi> and <eoi> as transformers knows them)
    "gemma": (["<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "<start_of_turn>", "<end_of_turn>",
               "<unused0>", "<unused1>", "<unused2>"], "<bos>", "<eos>", "<pad>", GEMMA,
              "<unused0><unused1>"),
    "qwen2.5": (["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<boi>", "<eoi>",
                 "<unconditional>"], None, "<|im_end|>", "<|endoftext|>", CHATML, "<boi><eoi>"),
    "llama3": (["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>",
                "<|end_header_id|>", "<|eot_id|>", "<boi>", "<eoi>", "<unconditional>"],
               "<|begin_of_text|>", "<|eot_id|>", "<|end_of_text|>", LLAMA3, "<boi><eoi>"),
}  # fmt: skip
CORPUS = ["You are a helpful assistant.", "What is in the image?", "A red circle and a blue "
          "square.", "user model assistant system", "And what colour is it?"] * 20  # fmt: skip
CONVERSATION = [
    {"role": "user", "content": "What is in the image?"},
    {"role": "assistant", "content": "A red circle."},
    {"role": "user", "content": "  And what colour is it? "},
]
CODES = 16


def _save(directory, family):
    specials, bos, eos, pad, template, _ = FAMILIES[family]
    tok = tokenizers.Tokenizer(tokenizers.models.BPE())
    tok.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = tokenizers.decoders.ByteLevel()
    trainer = tokenizers.trainers.BpeTrainer(
        vocab_size=320,
        special_tokens=specials,
        initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS, trainer=trainer)
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=bos, eos_token=eos, pad_token=pad
    )
    fast.chat_template = template
    fast.save_pretrained(directory)


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def family(request, tmp_path_factory):
    """(name, our tokenizer, its layout, transformers' tokenizer)."""
    directory = str(tmp_path_factory.mktemp(request.param))
    _save(directory, request.param)
    ours = load_tokenizer(directory)
    assert ours.chat_template == FAMILIES[request.param][4]
    return (
        request.param,
        ours,
        vocab_layout(ours, CODES),
        transformers.AutoTokenizer.from_pretrained(directory),
    )


def _hf_ids(hf, messages):
    out = hf.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    return list(out["input_ids"] if hasattr(out, "keys") else out)


def test_text_chat_ids_equal_apply_chat_template(family):
    name, ours, layout, hf = family
    for turns in (CONVERSATION[:1], CONVERSATION):
        assert chat_ids(ours, layout, turns).tolist() == _hf_ids(hf, turns), name
    if name != "gemma":
        system = [{"role": "system", "content": "Be brief."}, *CONVERSATION]
        assert chat_ids(ours, layout, system).tolist() == _hf_ids(hf, system)
    else:
        with pytest.raises(InputError, match="System role not supported"):
            chat_ids(ours, layout, [{"role": "system", "content": "x"}, *CONVERSATION])
    end = {"gemma": "<end_of_turn>", "qwen2.5": "<|im_end|>", "llama3": "<|eot_id|>"}[name]
    assert ours.token_to_id(end) in chat_stop_ids(ours, layout)


def test_an_image_goes_where_the_template_puts_the_user_content(family):
    name, ours, layout, hf = family
    codes = np.arange(CODES, dtype=np.int32).reshape(4, 4)[::-1]
    placeholder = FAMILIES[name][5]
    ours_msgs = [{**CONVERSATION[0], "image": codes}, *CONVERSATION[1:]]
    hf_msgs = [{**CONVERSATION[0], "content": placeholder + "\n" + CONVERSATION[0]["content"]},
               *CONVERSATION[1:]]  # fmt: skip
    want = _hf_ids(hf, hf_msgs)
    i = want.index(layout.boi_id)
    assert want[i + 1] == layout.eoi_id
    want[i + 1 : i + 1] = (codes.reshape(-1) + layout.image_offset).tolist()
    assert chat_ids(ours, layout, ours_msgs).tolist() == want


def test_gemma_sentencepiece_control_tokens_are_taken_by_name(tmp_path):
    """Gemma's own tokenizer kind: ``<bos>`` is a SentencePiece control piece, which
    SentencePiece does not parse in text; transformers and we both take it by name."""
    train_sentencepiece(CORPUS * 3, 300, str(tmp_path))
    config_path = tmp_path / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config_path.write_text(json.dumps({**config, "chat_template": GEMMA}))
    ours, hf = load_tokenizer(str(tmp_path)), transformers.AutoTokenizer.from_pretrained(tmp_path)
    layout = vocab_layout(ours, CODES)
    assert chat_ids(ours, layout, CONVERSATION).tolist() == _hf_ids(hf, CONVERSATION)
    codes = np.arange(CODES, dtype=np.int32).reshape(4, 4)
    hf_msgs = [{**CONVERSATION[0], "content": "<boi><eoi>\n" + CONVERSATION[0]["content"]}]
    want = _hf_ids(hf, hf_msgs)
    i = want.index(layout.boi_id) + 1
    want[i:i] = (codes.reshape(-1) + layout.image_offset).tolist()
    assert chat_ids(ours, layout, [{**CONVERSATION[0], "image": codes}]).tolist() == want


def test_templates_are_read_from_tokenizer_config_and_jinja_files(tmp_path):
    _save(str(tmp_path), "qwen2.5")
    assert os.path.exists(tmp_path / "chat_template.jinja")
    assert read_chat_template(str(tmp_path)) == CHATML
    config = json.loads((tmp_path / "tokenizer_config.json").read_text())
    config["chat_template"] = [{"name": "tool_use", "template": "x"},
                               {"name": "default", "template": GEMMA}]  # fmt: skip
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(config))
    assert read_chat_template(str(tmp_path)) == GEMMA  # the config wins over the file


# -- the sampling assets' word-level tokenizer (no template: Gemma's fallback) ---------


def _greedy_reference(sampler, prompt, stops, n):
    layout = sampler.layout
    spec = DecodeSpec(n, (0, layout.text_vocab_size), eos_ids=stops, pad_id=layout.pad_id)
    out = sampler.decoder.generate(left_pad([prompt], 0), [0], 0, spec, SamplingParams.of())
    return sampler.tokenizer.decode(cut_at_stop(out.tokens[0], stops))


def test_fallback_is_gemma_as_liquid_formats_write_it(sampler, monkeypatch):
    tok, layout = sampler.tokenizer, sampler.layout
    assert getattr(tok, "chat_template", None) is None
    codes = np.arange(16, dtype=np.int32).reshape(4, 4)
    one = [{"role": "user", "content": "w3 w4", "image": codes}]
    assert chat_ids(tok, layout, one).tolist() == vqa_prompt(tok, layout, "w3 w4", codes).tolist()
    turns = [*one, {"role": "assistant", "content": "w5"}, {"role": "user", "content": "w6"}]
    start, end, unk = tok.token_to_id("<start_of_turn>"), tok.token_to_id("<end_of_turn>"), 3
    w = lambda text: tok.encode(text)[0]
    image = [layout.boi_id, *(codes.reshape(-1) + layout.image_offset), layout.eoi_id]
    want = [layout.bos_id, start, unk, *image, w("w3"), w("w4"), end, start, unk, w("w5"), end,
            start, unk, w("w6"), end, start, unk]  # fmt: skip
    assert chat_ids(tok, layout, turns).tolist() == want  # "user" / "model" are <unk> here
    # Gemma's own template gives the same ids (its tokens taken by name).
    monkeypatch.setattr(tok, "chat_template", GEMMA)
    assert chat_ids(tok, layout, turns).tolist() == want


def test_sampler_chat_answers_a_multi_turn_conversation_with_an_image(sampler):
    image = np.random.default_rng(0).integers(0, 255, (16, 16, 3), np.uint8)
    turns = [{"role": "user", "content": "w1 w2", "image": image},
             {"role": "assistant", "content": "w3"}, {"role": "user", "content": "w4"}]  # fmt: skip
    codes = sampler._image_codes(image, None, "0")
    prompt = chat_ids(sampler.tokenizer, sampler.layout, [{**turns[0], "image": codes}, *turns[1:]])
    stops = chat_stop_ids(sampler.tokenizer, sampler.layout)
    assert sampler.chat(turns, max_new_tokens=8) == [_greedy_reference(sampler, prompt, stops, 8)]
    with pytest.raises(InputError, match="no messages"):
        chat_ids(sampler.tokenizer, sampler.layout, [])
