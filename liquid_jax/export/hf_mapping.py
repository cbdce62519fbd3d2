"""One table per family: HF tensor name <-> our parameter path, and how the array changes.

Used in both directions by ``load_hf`` and ``save_hf``. A ``{i}`` in an HF name marks a
per-layer tensor: HF layer ``i`` is row ``i`` of our stacked ``[layers, ...]`` array.
Transforms take one layer's array; ``to_hf`` uses only ``.T``, ``.reshape`` and slicing
so that it also computes expected shapes under ``jax.eval_shape``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from liquid_jax.models.spec import TransformerSpec

Array = np.ndarray


@dataclasses.dataclass(frozen=True)
class Transform:
    """HF array <-> our array for one tensor (one layer of a stacked one)."""

    to_ours: Callable[[Array, TransformerSpec], Array]
    to_hf: Callable[[Array, TransformerSpec], Array]


def _pad_rows(x: Array, rows: int) -> Array:
    if x.shape[0] == rows:
        return x
    return np.concatenate([x, np.zeros((rows - x.shape[0], *x.shape[1:]), x.dtype)])


COPY = Transform(lambda x, s: x, lambda x, s: x)
# nn.Linear stores [out, in]; our kernels are [in, out].
LINEAR = Transform(lambda x, s: x.T, lambda x, s: x.T)
# q: [H * hd, D] <-> [D, H, hd]; k/v the same with the kv heads.
HEADS_IN = Transform(
    lambda x, s: x.T.reshape(x.shape[1], -1, s.head_dim),
    lambda x, s: x.reshape(x.shape[0], -1).T,
)
# o: [D, H * hd] <-> [H, hd, D].
HEADS_OUT = Transform(
    lambda x, s: x.T.reshape(-1, s.head_dim, x.shape[0]),
    lambda x, s: x.reshape(-1, x.shape[-1]).T,
)
# q/k/v bias: [H * hd] <-> [H, hd].
HEADS_BIAS = Transform(lambda x, s: x.reshape(-1, s.head_dim), lambda x, s: x.reshape(-1))
# The vocabulary is padded on our side: [V, D] <-> [V_pad, D] (padding rows are zero).
EMBED = Transform(lambda x, s: _pad_rows(x, s.padded_vocab_size), lambda x, s: x[: s.vocab_size])
LM_HEAD = Transform(
    lambda x, s: _pad_rows(x, s.padded_vocab_size).T, lambda x, s: x[:, : s.vocab_size].T
)


@dataclasses.dataclass(frozen=True)
class Entry:
    hf: str
    ours: tuple[str, ...]
    transform: Transform
    when: Callable[[TransformerSpec], bool] = lambda spec: True

    @property
    def per_layer(self) -> bool:
        return "{i}" in self.hf

    def hf_names(self, spec: TransformerSpec) -> list[str]:
        if not self.per_layer:
            return [self.hf]
        return [self.hf.format(i=i) for i in range(spec.num_layers)]


_L = "model.layers.{i}."


def _attention(bias_when) -> list[Entry]:
    out = []
    for name, transform in (
        ("q_proj", HEADS_IN),
        ("k_proj", HEADS_IN),
        ("v_proj", HEADS_IN),
        ("o_proj", HEADS_OUT),
    ):
        path = ("layers", "self_attn", name)
        out.append(Entry(_L + f"self_attn.{name}.weight", (*path, "kernel"), transform))
        bias = HEADS_BIAS if name != "o_proj" else COPY
        out.append(
            Entry(
                _L + f"self_attn.{name}.bias",
                (*path, "bias"),
                bias,
                when=lambda s, n=name: bias_when(s, n),
            )
        )
    return out


def _mlp_and_norms(norms: tuple[str, ...]) -> list[Entry]:
    out = [
        Entry(_L + f"mlp.{name}.weight", ("layers", "mlp", name, "kernel"), LINEAR)
        for name in ("gate_proj", "up_proj", "down_proj")
    ]
    out += [Entry(_L + f"{n}.weight", ("layers", n, "scale"), COPY) for n in norms]
    return out


_OUTER = [
    Entry("model.embed_tokens.weight", ("embed_tokens", "embedding"), EMBED),
    Entry("model.norm.weight", ("norm", "scale"), COPY),
    Entry("lm_head.weight", ("lm_head", "kernel"), LM_HEAD, when=lambda s: not s.tie_embeddings),
]
_PLAIN_NORMS = ("input_layernorm", "post_attention_layernorm")
_SANDWICH_NORMS = _PLAIN_NORMS + ("pre_feedforward_layernorm", "post_feedforward_layernorm")


def _spec_bias(spec: TransformerSpec, name: str) -> bool:
    return spec.o_bias if name == "o_proj" else spec.qkv_bias


FAMILY_TABLES: dict[str, list[Entry]] = {
    "gemma": _OUTER + _attention(_spec_bias) + _mlp_and_norms(_PLAIN_NORMS),
    "gemma2": _OUTER + _attention(_spec_bias) + _mlp_and_norms(_SANDWICH_NORMS),
    "qwen2": _OUTER + _attention(lambda s, n: n != "o_proj") + _mlp_and_norms(_PLAIN_NORMS),
    "llama": _OUTER + _attention(_spec_bias) + _mlp_and_norms(_PLAIN_NORMS),
}

# Present in some checkpoints, never needed: rotary tables (recomputed), a tied head.
IGNORED_SUFFIXES = ("rotary_emb.inv_freq",)


def table_for(spec: TransformerSpec) -> list[Entry]:
    """The entries that apply to ``spec`` (biases and an untied head only when present)."""
    return [e for e in FAMILY_TABLES[spec.family] if e.when(spec)]


def ignorable(name: str, spec: TransformerSpec) -> bool:
    return name.endswith(IGNORED_SUFFIXES) or (spec.tie_embeddings and name == "lm_head.weight")
