"""Published model shapes as ``TransformerSpec``s (the HF ``config.json`` of each release).

``get_preset(name, **overrides)`` returns one, e.g. with ``param_dtype=jnp.bfloat16`` or
``remat="full"``. ``liquid_v1_7b`` is the released Liquid model: Gemma-7B with the 8192
VQGAN codes appended to the 256000 text tokens.
"""

from __future__ import annotations

from liquid_jax.errors import ConfigError
from liquid_jax.models.spec import RopeScaling, TransformerSpec


def _gemma(**kw) -> TransformerSpec:
    return TransformerSpec.for_family("gemma", vocab_size=256_000, head_dim=256, **kw)


def _gemma2(**kw) -> TransformerSpec:
    return TransformerSpec.for_family(
        "gemma2",
        vocab_size=256_000,
        head_dim=256,
        query_pre_attn_scalar=256,
        sliding_window=4096,
        **kw,
    )


def _qwen25(**kw) -> TransformerSpec:
    kw.setdefault("vocab_size", 151_936)
    kw.setdefault("tie_embeddings", False)
    kw.setdefault("head_dim", 128)
    return TransformerSpec.for_family(
        "qwen2",
        max_position_embeddings=32_768,
        bos_token_id=151_643,
        eos_token_id=(151_643,),
        **kw,
    )


def _llama3(factor: float, **kw) -> TransformerSpec:
    kw.setdefault("head_dim", 128)
    return TransformerSpec.for_family(
        "llama",
        vocab_size=128_256,
        num_kv_heads=8,
        max_position_embeddings=131_072,
        rope_scaling=RopeScaling(factor, 1.0, 4.0, 8192),
        bos_token_id=128_000,
        eos_token_id=(128_001,),
        **kw,
    )


_BUILDERS = {
    "gemma_2b": lambda: _gemma(
        hidden_size=2048, intermediate_size=16_384, num_layers=18, num_heads=8, num_kv_heads=1
    ),
    "gemma_7b": lambda: _gemma(
        hidden_size=3072, intermediate_size=24_576, num_layers=28, num_heads=16, num_kv_heads=16
    ),
    "gemma2_2b": lambda: _gemma2(
        hidden_size=2304, intermediate_size=9216, num_layers=26, num_heads=8, num_kv_heads=4
    ),
    "gemma2_9b": lambda: _gemma2(
        hidden_size=3584, intermediate_size=14_336, num_layers=42, num_heads=16, num_kv_heads=8
    ),
    "qwen2.5_0.5b": lambda: _qwen25(
        hidden_size=896,
        intermediate_size=4864,
        num_layers=24,
        num_heads=14,
        num_kv_heads=2,
        head_dim=64,
        tie_embeddings=True,
    ),
    "qwen2.5_1.5b": lambda: _qwen25(
        hidden_size=1536,
        intermediate_size=8960,
        num_layers=28,
        num_heads=12,
        num_kv_heads=2,
        tie_embeddings=True,
    ),
    "qwen2.5_3b": lambda: _qwen25(
        hidden_size=2048,
        intermediate_size=11_008,
        num_layers=36,
        num_heads=16,
        num_kv_heads=2,
        tie_embeddings=True,
    ),
    "qwen2.5_7b": lambda: _qwen25(
        vocab_size=152_064,
        hidden_size=3584,
        intermediate_size=18_944,
        num_layers=28,
        num_heads=28,
        num_kv_heads=4,
    ),
    "qwen2.5_14b": lambda: _qwen25(
        vocab_size=152_064,
        hidden_size=5120,
        intermediate_size=13_824,
        num_layers=48,
        num_heads=40,
        num_kv_heads=8,
    ),
    "qwen2.5_32b": lambda: _qwen25(
        vocab_size=152_064,
        hidden_size=5120,
        intermediate_size=27_648,
        num_layers=64,
        num_heads=40,
        num_kv_heads=8,
    ),
    "llama3.2_1b": lambda: _llama3(
        32.0,
        hidden_size=2048,
        intermediate_size=8192,
        num_layers=16,
        num_heads=32,
        head_dim=64,
        tie_embeddings=True,
    ),
    "llama3.2_3b": lambda: _llama3(
        32.0,
        hidden_size=3072,
        intermediate_size=8192,
        num_layers=28,
        num_heads=24,
        tie_embeddings=True,
    ),
    "llama3.1_8b": lambda: _llama3(
        8.0, hidden_size=4096, intermediate_size=14_336, num_layers=32, num_heads=32
    ),
    "liquid_v1_7b": lambda: _gemma(
        hidden_size=3072, intermediate_size=24_576, num_layers=28, num_heads=16, num_kv_heads=16
    ).replace(vocab_size=256_000 + 8192),
}

PRESETS: tuple[str, ...] = tuple(_BUILDERS)


def _normalise(name: str) -> str:
    return "".join(c for c in name.lower() if c not in "-_ ")


def get_preset(name: str, **overrides) -> TransformerSpec:
    """The spec of a published model: ``name`` as in ``PRESETS`` (``gemma_7b``,
    ``qwen2.5_7b``, ...) or as published (``Qwen2.5-7B``, ``Llama-3.2-1B``, ``gemma-2-9b``);
    case, ``-`` and ``_`` do not matter."""
    keys = {_normalise(k): k for k in _BUILDERS}
    if _normalise(name) not in keys:
        raise ConfigError(f"unknown preset {name!r}; available: {list(PRESETS)}")
    spec = _BUILDERS[keys[_normalise(name)]]()
    return spec.replace(**overrides) if overrides else spec
