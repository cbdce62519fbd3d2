"""``TransformerSpec``: one frozen description of a decoder-only LLM in four families.

The families differ only in switches this spec names:

| family | MLP | norm | embeddings | attention extras |
| --- | --- | --- | --- | --- |
| ``gemma`` | GeGLU (gelu-tanh) | ``x * (1 + w)`` | scaled by sqrt(hidden) | MQA / MHA |
| ``gemma2`` | as gemma | as gemma + sandwich norms | as gemma | logit soft-caps, sliding window |
| ``qwen2`` | SwiGLU | ``w * x`` | plain | q/k/v bias, GQA |
| ``llama`` | SwiGLU | ``w * x`` | plain | GQA, llama3 rope scaling |

``TransformerSpec.for_family(family, **fields)`` fills in the family's switches; every
field can still be overridden. The spec is hashable (it is static data of the module).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax.numpy as jnp

from liquid_jax.errors import ConfigError

FAMILIES = ("gemma", "gemma2", "qwen2", "llama")
ACTIVATIONS = ("gelu_tanh", "silu")
# What each layer keeps for its backward (``transformer.py``): nothing ("full"), the
# projections MaxText's names say, or JAX's own policies ("none": no remat).
JAX_REMAT_POLICIES = ("none", "dots_saveable", "dots_with_no_batch_dims_saveable",
                      "everything_saveable")  # fmt: skip
REMAT_POLICIES = (
    "full",
    "minimal",
    "save_dot_except_mlpwi",
    "save_dot_except_mlp",
    "save_qkv_proj",
    "save_out_proj",
    *JAX_REMAT_POLICIES,
)
# The policies that keep the gate and up projections ("mlpwi_0", "mlpwi_1").
REMAT_SAVES_MLP_INPUTS = ("minimal", "dots_saveable", "dots_with_no_batch_dims_saveable",
                          "everything_saveable")  # fmt: skip
FULL, SLIDING = "full_attention", "sliding_attention"
# The attention kernels (models/attention_kernels.py): "auto" picks per backend.
ATTENTION = ("auto", "xla", "splash", "cudnn", "dot_product")

# The switches that define each family; `for_family` starts from these.
FAMILY_DEFAULTS: dict[str, dict[str, Any]] = {
    "gemma": dict(
        activation="gelu_tanh",
        norm_plus_one=True,
        scale_embeddings=True,
        tie_embeddings=True,
        rope_theta=10_000.0,
        bos_token_id=2,
        eos_token_id=(1,),
        pad_token_id=0,
    ),
    "gemma2": dict(
        activation="gelu_tanh",
        norm_plus_one=True,
        scale_embeddings=True,
        tie_embeddings=True,
        sandwich_norms=True,
        attn_logit_softcap=50.0,
        final_logit_softcap=30.0,
        sliding_window=4096,
        rope_theta=10_000.0,
        bos_token_id=2,
        eos_token_id=(1,),
        pad_token_id=0,
    ),
    "qwen2": dict(activation="silu", qkv_bias=True, rope_theta=1_000_000.0),
    "llama": dict(activation="silu", rope_theta=500_000.0, rms_norm_eps=1e-5),
}


@dataclasses.dataclass(frozen=True)
class RopeScaling:
    """Llama-3 frequency-dependent RoPE scaling (HF ``rope_type: llama3``)."""

    factor: float = 8.0
    low_freq_factor: float = 1.0
    high_freq_factor: float = 4.0
    original_max_position_embeddings: int = 8192


@dataclasses.dataclass(frozen=True)
class TransformerSpec:
    """Shape and numerics of a decoder-only transformer.

    ``vocab_size`` counts real tokens (text + image codes); the embedding table and the
    logits have ``padded_vocab_size`` rows/columns (a multiple of ``vocab_multiple`` so
    the vocabulary splits evenly over the tensor axis). ``param_dtype`` is how weights
    are stored, ``dtype`` how activations are computed; logits are always float32.
    """

    family: str
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    vocab_multiple: int = 128
    max_position_embeddings: int = 8192
    rms_norm_eps: float = 1e-6
    rope_theta: float = 10_000.0
    rope_scaling: RopeScaling | None = None
    activation: str = "silu"
    norm_plus_one: bool = False  # Gemma's RMSNorm multiplies by (1 + w)
    scale_embeddings: bool = False  # Gemma multiplies embeddings by sqrt(hidden)
    tie_embeddings: bool = False
    qkv_bias: bool = False
    o_bias: bool = False
    sandwich_norms: bool = False  # Gemma2: post-attention, pre/post-feedforward norms
    attn_logit_softcap: float | None = None
    final_logit_softcap: float | None = None
    query_pre_attn_scalar: float | None = None  # attention scale = this**-0.5
    sliding_window: int | None = None
    layer_types: tuple[str, ...] | None = None  # per layer: full_attention / sliding_attention
    param_dtype: Any = jnp.float32
    dtype: Any = jnp.float32
    remat: str = "none"
    # > 0: training attention in blocks of this many queries (dot_product_attention's
    # causal_chunk): the same numbers up to rounding, faster on CPU. 0: one block.
    attn_causal_chunk: int = 0
    # > 0: the MLP of a call over more than one position takes its intermediate
    # features in blocks of at most this many (the largest divisor of
    # intermediate_size not above it) and recomputes them in the backward pass
    # (models/mlp_chunks.py): same numbers up to rounding, one block's share of the
    # [tokens, F] intermediates. 0: all F at once.
    mlp_chunk: int = 0
    # The attention kernel (models/attention_kernels.py): "auto" = splash on TPU, cuDNN
    # on an NVIDIA GPU when it can, else "xla" (the reference; always with a KV cache).
    attention: str = "auto"
    init_std: float = 0.02
    bos_token_id: int | None = None
    eos_token_id: tuple[int, ...] | None = None
    pad_token_id: int | None = None

    def __post_init__(self):
        set_ = lambda k, v: object.__setattr__(self, k, v)
        if self.family not in FAMILIES:
            raise ConfigError(f"unknown family {self.family!r}; supported: {list(FAMILIES)}")
        if self.activation not in ACTIVATIONS:
            raise ConfigError(f"unknown activation {self.activation!r}; use one of {ACTIVATIONS}")
        if self.remat not in REMAT_POLICIES:
            raise ConfigError(f"unknown remat policy {self.remat!r}; use one of {REMAT_POLICIES}")
        if self.mlp_chunk < 0:
            raise ConfigError(f"spec: mlp_chunk={self.mlp_chunk} must be >= 0 (0: no blocks)")
        if self.mlp_chunk and self.remat in REMAT_SAVES_MLP_INPUTS:
            raise ConfigError(
                f"spec: remat={self.remat!r} saves the MLP's gate and up projections, which "
                f"mlp_chunk={self.mlp_chunk} recomputes; use another policy or mlp_chunk=0"
            )
        if self.attention not in ATTENTION:
            raise ConfigError(f"unknown attention {self.attention!r}; use one of {ATTENTION}")
        if self.attention in ("cudnn", "dot_product") and self.attn_logit_softcap is not None:
            raise ConfigError(
                f"spec: attention={self.attention!r} (jax.nn.dot_product_attention) cannot "
                f"apply attn_logit_softcap={self.attn_logit_softcap}; use 'auto', 'xla' "
                "or 'splash'"
            )
        for name in (
            "vocab_size",
            "hidden_size",
            "intermediate_size",
            "num_layers",
            "num_heads",
            "num_kv_heads",
            "head_dim",
            "vocab_multiple",
        ):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"spec: {name}={getattr(self, name)} must be positive")
        if self.num_heads % self.num_kv_heads:
            raise ConfigError(
                f"spec: num_heads={self.num_heads} is not a multiple of "
                f"num_kv_heads={self.num_kv_heads}"
            )
        set_("param_dtype", jnp.dtype(self.param_dtype))
        set_("dtype", jnp.dtype(self.dtype))
        if isinstance(self.rope_scaling, dict):
            set_("rope_scaling", RopeScaling(**self.rope_scaling))
        if isinstance(self.eos_token_id, int):
            set_("eos_token_id", (self.eos_token_id,))
        elif self.eos_token_id is not None:
            set_("eos_token_id", tuple(int(t) for t in self.eos_token_id))
        if self.layer_types is None:
            alternate = self.family == "gemma2" and self.sliding_window
            # HF Gemma2: layer i slides when i is even (layer_types[i] = (i + 1) % 2).
            types = [SLIDING if alternate and i % 2 == 0 else FULL for i in range(self.num_layers)]
            set_("layer_types", tuple(types))
        else:
            set_("layer_types", tuple(self.layer_types))
        if len(self.layer_types) != self.num_layers:
            raise ConfigError(
                f"spec: {len(self.layer_types)} layer_types for {self.num_layers} layers"
            )
        bad = sorted(set(self.layer_types) - {FULL, SLIDING})
        if bad:
            raise ConfigError(f"spec: unknown layer types {bad}; use {FULL!r} or {SLIDING!r}")
        if SLIDING in self.layer_types and not self.sliding_window:
            raise ConfigError("spec: sliding_attention layers need a sliding_window")

    @classmethod
    def for_family(cls, family: str, **fields) -> TransformerSpec:
        """A spec with ``family``'s switches (``FAMILY_DEFAULTS``), overridden by ``fields``."""
        if family not in FAMILY_DEFAULTS:
            raise ConfigError(f"unknown family {family!r}; supported: {list(FAMILIES)}")
        return cls(family=family, **{**FAMILY_DEFAULTS[family], **fields})

    def to_dict(self) -> dict[str, Any]:
        """JSON-able fields (dtypes by name); ``from_dict`` inverts it."""
        out = dataclasses.asdict(self)
        out["param_dtype"], out["dtype"] = str(self.param_dtype), str(self.dtype)
        return out

    @classmethod
    def from_dict(cls, fields: dict[str, Any]) -> TransformerSpec:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(fields) - names)
        if unknown:
            raise ConfigError(f"spec: unknown fields {unknown}")
        return cls(**fields)

    def replace(self, **fields) -> TransformerSpec:
        return dataclasses.replace(self, **fields)

    @property
    def padded_vocab_size(self) -> int:
        return -(-self.vocab_size // self.vocab_multiple) * self.vocab_multiple

    @property
    def attn_scale(self) -> float:
        scalar = self.query_pre_attn_scalar or self.head_dim
        return float(scalar) ** -0.5

    @property
    def window_sizes(self) -> tuple[int, ...]:
        """Per layer: the sliding window in tokens, 0 for global attention."""
        return tuple(self.sliding_window if t == SLIDING else 0 for t in self.layer_types)

    def num_params(self, include_padding: bool = False) -> int:
        """Parameter count from the shapes (vocab padding excluded unless asked)."""
        d, f, h, k, hd = (
            self.hidden_size,
            self.intermediate_size,
            self.num_heads,
            self.num_kv_heads,
            self.head_dim,
        )
        v = self.padded_vocab_size if include_padding else self.vocab_size
        attn = d * hd * (2 * h + 2 * k)
        attn += (h + 2 * k) * hd * self.qkv_bias + d * self.o_bias
        norms = d * (4 if self.sandwich_norms else 2)
        per_layer = attn + 3 * d * f + norms
        embed = v * d * (1 if self.tie_embeddings else 2)
        return embed + self.num_layers * per_layer + d
