"""HF ``config.json`` <-> ``TransformerSpec`` for gemma, gemma2, qwen2 and llama.

Reads both the transformers 5 layout (``rope_parameters``) and the legacy one
(``rope_theta`` / ``rope_scaling``); writes both, so transformers 4 and 5 load the result.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp

from liquid_jax.errors import InputError
from liquid_jax.models.spec import FAMILY_DEFAULTS, FULL, SLIDING, RopeScaling, TransformerSpec

ARCHITECTURES = {
    "gemma": "GemmaForCausalLM",
    "gemma2": "Gemma2ForCausalLM",
    "qwen2": "Qwen2ForCausalLM",
    "llama": "LlamaForCausalLM",
}
SUPPORTED = tuple(ARCHITECTURES)

# Switches a family fixes in transformers: a spec that differs cannot be written as it.
_FIXED = {
    "gemma": dict(
        activation="gelu_tanh",
        norm_plus_one=True,
        scale_embeddings=True,
        sandwich_norms=False,
        attn_logit_softcap=None,
        final_logit_softcap=None,
    ),
    "gemma2": dict(
        activation="gelu_tanh", norm_plus_one=True, scale_embeddings=True, sandwich_norms=True
    ),
    "qwen2": dict(
        activation="silu",
        norm_plus_one=False,
        scale_embeddings=False,
        sandwich_norms=False,
        attn_logit_softcap=None,
        final_logit_softcap=None,
        qkv_bias=True,
        o_bias=False,
    ),
    "llama": dict(
        activation="silu",
        norm_plus_one=False,
        scale_embeddings=False,
        sandwich_norms=False,
        attn_logit_softcap=None,
        final_logit_softcap=None,
    ),
}
_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}


def family_of(config: dict[str, Any], where: str = "config.json") -> str:
    """The family from ``model_type``, else from ``architectures``."""
    model_type = config.get("model_type")
    if model_type in ARCHITECTURES:
        return model_type
    by_arch = {v: k for k, v in ARCHITECTURES.items()}
    for arch in config.get("architectures") or ():
        if arch in by_arch:
            return by_arch[arch]
    raise InputError(
        f"{where}: unsupported model_type {model_type!r} (architectures "
        f"{config.get('architectures')}); supported model types: {list(SUPPORTED)} "
        f"({', '.join(ARCHITECTURES.values())})"
    )


def _activation(config: dict, family: str, where: str) -> str:
    name = (
        config.get("hidden_activation")
        or config.get("hidden_act")
        or ("gelu_pytorch_tanh" if family.startswith("gemma") else "silu")
    )
    # transformers maps Gemma's legacy "gelu" to the tanh approximation as well.
    if name in ("gelu_pytorch_tanh", "gelu_new", "gelu_fast") or (
        name == "gelu" and family.startswith("gemma")
    ):
        return "gelu_tanh"
    if name in ("silu", "swish"):
        return "silu"
    raise InputError(f"{where}: unsupported activation {name!r}")


def _rope(config: dict, family: str, where: str) -> tuple[float, RopeScaling | None]:
    params = dict(config.get("rope_parameters") or {})
    scaling = config.get("rope_scaling") or params
    theta = params.get("rope_theta", config.get("rope_theta"))
    if theta is None:
        theta = FAMILY_DEFAULTS[family]["rope_theta"]
    rope_type = (scaling or {}).get("rope_type", (scaling or {}).get("type", "default"))
    if rope_type in (None, "default"):
        return float(theta), None
    if rope_type != "llama3":
        raise InputError(f"{where}: unsupported rope type {rope_type!r} (default, llama3)")
    return float(theta), RopeScaling(
        factor=float(scaling["factor"]),
        low_freq_factor=float(scaling["low_freq_factor"]),
        high_freq_factor=float(scaling["high_freq_factor"]),
        original_max_position_embeddings=int(
            scaling.get("original_max_position_embeddings", config["max_position_embeddings"])
        ),
    )


def _layer_types(config: dict, family: str, num_layers: int) -> tuple[tuple[str, ...], int | None]:
    window = config.get("sliding_window")
    types = config.get("layer_types")
    if family == "qwen2":
        if not config.get("use_sliding_window"):
            return (FULL,) * num_layers, None
        if types is None:
            start = config.get("max_window_layers", 28)
            types = [SLIDING if i >= start else FULL for i in range(num_layers)]
    elif family == "gemma2":
        types = types or [SLIDING if i % 2 == 0 else FULL for i in range(num_layers)]
    else:
        types = [FULL] * num_layers
        window = None
    if SLIDING not in types:
        window = None
    return tuple(types), window


def spec_from_hf_config(
    config: dict[str, Any],
    *,
    vocab_multiple: int = 128,
    param_dtype=jnp.float32,
    dtype=None,
    where: str = "config.json",
    **overrides,
) -> TransformerSpec:
    """A spec from a parsed HF ``config.json``; ``overrides`` replace any field."""
    family = family_of(config, where)
    if config.get("mlp_bias"):
        raise InputError(f"{where}: mlp_bias=true is not supported")
    heads = int(config["num_attention_heads"])
    layers = int(config["num_hidden_layers"])
    theta, scaling = _rope(config, family, where)
    layer_types, window = _layer_types(config, family, layers)
    bias = bool(config.get("attention_bias", False))
    eos = config.get("eos_token_id")
    fields = dict(
        vocab_size=int(config["vocab_size"]),
        hidden_size=int(config["hidden_size"]),
        intermediate_size=int(config["intermediate_size"]),
        num_layers=layers,
        num_heads=heads,
        num_kv_heads=int(config.get("num_key_value_heads") or heads),
        head_dim=int(config.get("head_dim") or config["hidden_size"] // heads),
        vocab_multiple=vocab_multiple,
        max_position_embeddings=int(config.get("max_position_embeddings", 8192)),
        rms_norm_eps=float(config.get("rms_norm_eps", 1e-6)),
        rope_theta=theta,
        rope_scaling=scaling,
        activation=_activation(config, family, where),
        tie_embeddings=bool(config.get("tie_word_embeddings", family.startswith("gemma"))),
        qkv_bias=True if family == "qwen2" else bias,
        o_bias=False if family == "qwen2" else bias,
        sliding_window=window,
        layer_types=layer_types,
        param_dtype=param_dtype,
        dtype=dtype or param_dtype,
        bos_token_id=config.get("bos_token_id"),
        eos_token_id=eos if eos is None or isinstance(eos, list) else (eos,),
        pad_token_id=config.get("pad_token_id"),
    )
    if family == "gemma2":
        fields.update(
            query_pre_attn_scalar=config.get("query_pre_attn_scalar", 256),
            attn_logit_softcap=config.get("attn_logit_softcapping"),
            final_logit_softcap=config.get("final_logit_softcapping"),
        )
    fields.update(overrides)
    return TransformerSpec.for_family(family, **fields)


def stored_dtype(config: dict[str, Any]):
    """The dtype the checkpoint declares (``dtype`` / ``torch_dtype``), float32 if none."""
    name = config.get("dtype") or config.get("torch_dtype") or "float32"
    return _DTYPES.get(str(name), jnp.float32)


def hf_config_from_spec(spec: TransformerSpec, dtype=None) -> dict[str, Any]:
    """The ``config.json`` contents for ``spec`` (unpadded vocabulary)."""
    family = spec.family
    wrong = {k: getattr(spec, k) for k, v in _FIXED[family].items() if getattr(spec, k) != v}
    if wrong:
        raise InputError(
            f"spec cannot be written as an HF {family} model: {wrong} (transformers' "
            f"{ARCHITECTURES[family]} needs {_FIXED[family]})"
        )
    if family in ("gemma", "llama") and spec.qkv_bias != spec.o_bias:
        raise InputError(f"{family}: attention_bias covers q/k/v and o together")
    dtype_name = jnp.dtype(dtype or spec.param_dtype).name
    rope_params: dict[str, Any] = {"rope_type": "default", "rope_theta": spec.rope_theta}
    legacy_scaling = None
    if spec.rope_scaling is not None:
        s = spec.rope_scaling
        legacy_scaling = {
            "rope_type": "llama3",
            "factor": s.factor,
            "low_freq_factor": s.low_freq_factor,
            "high_freq_factor": s.high_freq_factor,
            "original_max_position_embeddings": s.original_max_position_embeddings,
        }
        rope_params.update(legacy_scaling)
    eos = list(spec.eos_token_id) if spec.eos_token_id else None
    config: dict[str, Any] = {
        "architectures": [ARCHITECTURES[family]],
        "model_type": family,
        "vocab_size": spec.vocab_size,
        "hidden_size": spec.hidden_size,
        "intermediate_size": spec.intermediate_size,
        "num_hidden_layers": spec.num_layers,
        "num_attention_heads": spec.num_heads,
        "num_key_value_heads": spec.num_kv_heads,
        "head_dim": spec.head_dim,
        "hidden_act": "gelu_pytorch_tanh" if spec.activation == "gelu_tanh" else "silu",
        "max_position_embeddings": spec.max_position_embeddings,
        "rms_norm_eps": spec.rms_norm_eps,
        "rope_theta": spec.rope_theta,
        "rope_scaling": legacy_scaling,
        "rope_parameters": rope_params,
        "tie_word_embeddings": spec.tie_embeddings,
        "attention_dropout": 0.0,
        "initializer_range": spec.init_std,
        "use_cache": True,
        "bos_token_id": spec.bos_token_id,
        "eos_token_id": eos[0] if eos and len(eos) == 1 else eos,
        "pad_token_id": spec.pad_token_id,
        "dtype": dtype_name,
        "torch_dtype": dtype_name,
    }
    sliding = SLIDING in spec.layer_types
    if family in ("gemma", "gemma2", "llama"):
        config["attention_bias"] = spec.qkv_bias
    if family == "llama":
        config["mlp_bias"] = False
    if family == "gemma2":
        config.update(
            hidden_activation=config["hidden_act"],
            query_pre_attn_scalar=spec.query_pre_attn_scalar or spec.head_dim,
            attn_logit_softcapping=spec.attn_logit_softcap,
            final_logit_softcapping=spec.final_logit_softcap,
            sliding_window=spec.sliding_window,
            layer_types=list(spec.layer_types),
        )
    if family == "qwen2":
        first = spec.layer_types.index(SLIDING) if sliding else spec.num_layers
        config.update(
            use_sliding_window=sliding,
            sliding_window=spec.sliding_window if sliding else None,
            max_window_layers=first,
            layer_types=list(spec.layer_types),
        )
    return config


def generation_config_from_spec(spec: TransformerSpec) -> dict[str, Any]:
    eos = list(spec.eos_token_id) if spec.eos_token_id else None
    return {
        "_from_model_config": True,
        "bos_token_id": spec.bos_token_id,
        "eos_token_id": eos[0] if eos and len(eos) == 1 else eos,
        "pad_token_id": spec.pad_token_id,
    }
