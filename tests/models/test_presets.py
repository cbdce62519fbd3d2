"""Full-size presets: parameter counts from shapes only (``nnx.eval_shape``, nothing allocated)."""

import pytest
from flax import nnx

from liquid_jax.models.presets import PRESETS, get_preset
from liquid_jax.models.transformer import Transformer, count_params

# Published sizes (model cards / papers), in billions.
PUBLISHED = {
    "gemma_2b": 2.51,
    "gemma_7b": 8.54,
    "gemma2_2b": 2.61,
    "gemma2_9b": 9.24,
    "qwen2.5_0.5b": 0.49,
    "qwen2.5_1.5b": 1.54,
    "qwen2.5_3b": 3.09,
    "qwen2.5_7b": 7.62,
    "qwen2.5_14b": 14.7,
    "qwen2.5_32b": 32.76,
    "llama3.2_1b": 1.24,
    "llama3.2_3b": 3.21,
    "llama3.1_8b": 8.03,
    "liquid_v1_7b": 8.56,
}


def hf_formula(s) -> int:
    """The count as HF config arithmetic gives it (embeddings + layers + final norm)."""
    q = s.hidden_size * s.num_heads * s.head_dim
    kv = 2 * s.hidden_size * s.num_kv_heads * s.head_dim
    o = s.num_heads * s.head_dim * s.hidden_size
    bias = (s.num_heads + 2 * s.num_kv_heads) * s.head_dim if s.qkv_bias else 0
    mlp = 3 * s.hidden_size * s.intermediate_size
    norms = (4 if s.sandwich_norms else 2) * s.hidden_size
    embed = s.vocab_size * s.hidden_size * (1 if s.tie_embeddings else 2)
    return embed + s.num_layers * (q + kv + o + bias + mlp + norms) + s.hidden_size


def test_every_preset_has_a_published_figure():
    assert set(PRESETS) == set(PUBLISHED)


@pytest.mark.parametrize("name", PRESETS)
def test_param_counts(name):
    spec = get_preset(name)
    abstract = nnx.eval_shape(lambda: Transformer(spec, rngs=nnx.Rngs(0)))
    count = count_params(abstract)
    assert count == hf_formula(spec) == spec.num_params()
    assert count == pytest.approx(PUBLISHED[name] * 1e9, rel=0.01)
    padded = count_params(abstract, include_padding=True)
    assert padded == spec.num_params(include_padding=True) >= count


def test_liquid_is_gemma_7b_plus_image_codes():
    liquid, gemma = get_preset("liquid_v1_7b"), get_preset("Gemma-7B")
    assert liquid.vocab_size == 256_000 + 8192 and liquid.padded_vocab_size == 264_192
    assert liquid.replace(vocab_size=256_000) == gemma
    assert count_params_exact(liquid) == 8_562_846_720


def count_params_exact(spec):
    return count_params(nnx.eval_shape(lambda: Transformer(spec, rngs=nnx.Rngs(0))))


def test_published_names_and_overrides():
    assert get_preset("Llama-3.2-1B").rope_scaling.factor == 32.0
    assert get_preset("gemma-2-9b").layer_types[:2] == ("sliding_attention", "full_attention")
    assert get_preset("Qwen2.5-7B", remat="full").remat == "full"
    with pytest.raises(ValueError, match="unknown preset 'gpt2'"):
        get_preset("gpt2")
