"""Fused attention kernels behind one switch, ``TransformerSpec.attention``.

``attention`` names the kernel:

- ``"xla"``: the einsum reference (``attention.dot_product_attention``: dense mask,
  optional causal blocks); every backend, and the only path with a KV cache.
- ``"splash"``: the Pallas splash kernel (causal or local mask, segment ids, logit
  soft-cap, grouped KV heads); TPU, elsewhere Pallas interpret mode (slow: for tests).
  The length must be a multiple of 128.
- ``"cudnn"``: ``jax.nn.dot_product_attention(implementation="cudnn")``; NVIDIA GPU,
  bfloat16/float16, no logit soft-cap (the spec refuses it).
- ``"dot_product"``: the same wrapper with ``implementation="xla"``, runnable anywhere
  (it checks the cudnn wiring on CPU); no logit soft-cap either.
- ``"auto"`` (the default): splash on TPU when the length is a multiple of 128, cudnn on
  an NVIDIA GPU when ``cudnn_supports`` the spec, else xla.

A fused kernel serves training and cache-less forwards, where the keys are the queries'
own tokens in order: a key is visible when it has the query's segment id, is not later,
and, on sliding-window layers, is fewer than ``window`` tokens behind. The XLA path
measures the window in RoPE positions, the kernels in tokens: the same whenever positions
advance by one per token within a segment, as packing produces (padding, all at position
0, differs, and carries no loss). With a KV cache the keys are cache slots with their own
segment ids and positions, so every choice runs the XLA path there (``choose_attention``).

A kernel needs its window as a Python int, while the scanned layer stack carries it per
layer as a traced value: ``SegmentMask.window_id`` indexes the spec's distinct windows
(Gemma2: global and local) and ``lax.switch`` picks the kernel compiled for it.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
from absl import logging
from jax.experimental.pallas.ops.tpu.splash_attention import splash_attention_kernel as splash
from jax.experimental.pallas.ops.tpu.splash_attention import splash_attention_mask as splash_mask

from liquid_jax.models.spec import TransformerSpec
from liquid_jax.parallel.rules import logical_to_mesh
from liquid_jax.parallel.sharding import fit_spec

SPLASH_BLOCKS = (512, 256, 128)  # the largest that divides the length is used


@dataclasses.dataclass(frozen=True)
class SegmentMask:
    """What a fused kernel reads instead of a dense ``[B, T, S]`` mask.

    segment_ids: int32[B, T] (keys are the same tokens); window_id: int32[], this layer's
    index into ``windows`` (static, 0 = global); impl: the kernel (``choose_attention``).
    """

    segment_ids: jax.Array
    window_id: jax.Array
    windows: tuple[int, ...]
    impl: str


def layer_windows(spec: TransformerSpec) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(the distinct windows, sorted; per layer the index of its window among them)."""
    windows = tuple(sorted(set(spec.window_sizes)))
    return windows, tuple(windows.index(w) for w in spec.window_sizes)


def cudnn_supports(spec: TransformerSpec) -> bool:
    """Whether cuDNN flash attention takes this spec: half precision, no soft-cap, a head
    dimension that is a multiple of 8 up to 256."""
    return (
        spec.attn_logit_softcap is None
        and spec.dtype in (jnp.dtype(jnp.bfloat16), jnp.dtype(jnp.float16))
        and spec.head_dim % 8 == 0
        and spec.head_dim <= 256
    )


def _platform() -> str:
    """``tpu``, ``cuda``, ``rocm`` or ``cpu`` (the default backend)."""
    backend = jax.default_backend()
    if backend != "gpu":
        return backend
    version = jax.local_devices()[0].client.platform_version.lower()
    return "rocm" if "rocm" in version else "cuda"


def choose_attention(spec: TransformerSpec, *, cached: bool, seq_len: int) -> str:
    """The kernel for one call: ``xla``, ``splash``, ``cudnn`` or ``dot_product``."""
    if cached:
        # Keys are cache slots (their own segments and positions, and S != T): XLA path.
        return "xla"
    choice = spec.attention
    if choice == "auto":
        platform = _platform()
        if platform == "tpu" and seq_len % SPLASH_BLOCKS[-1] == 0:
            return "splash"
        if platform == "cuda" and cudnn_supports(spec):
            return "cudnn"
        return "xla"
    if choice == "splash" and seq_len % SPLASH_BLOCKS[-1]:
        raise ValueError(
            f"attention='splash' needs a sequence length that is a multiple of "
            f"{SPLASH_BLOCKS[-1]}, got {seq_len}; use attention='auto' or 'xla'"
        )
    return choice


def fused_attention(q_bthd, k_btkd, v_btkd, mask: SegmentMask, scale: float, softcap):
    """q: [B, T, H, D]; k, v: [B, T, K, D] -> [B, T, H, D], masked as ``mask`` says."""
    kernel = {
        "splash": _splash,
        "cudnn": functools.partial(_jax_nn, implementation="cudnn"),
        "dot_product": functools.partial(_jax_nn, implementation="xla"),
    }[mask.impl]
    branches = [
        functools.partial(kernel, window=w, scale=scale, softcap=softcap) for w in mask.windows
    ]
    args = (q_bthd, k_btkd, v_btkd, mask.segment_ids)
    if len(branches) == 1:
        return branches[0](*args)
    return jax.lax.switch(mask.window_id, branches, *args)


def _jax_nn(q, k, v, segment_ids, *, window, scale, softcap, implementation):
    """``jax.nn.dot_product_attention``: causal (cuDNN skips the blocks above the
    diagonal), the window as its left ``local_window_size``, segments as a boolean mask
    (cuDNN turns it into a dense bias)."""
    if softcap is not None:  # the spec refuses this; kept for direct callers
        raise ValueError(f"attention={implementation!r}: no attention logit soft-cap")
    same = (segment_ids[:, :, None] == segment_ids[:, None, :])[:, None]  # [B, 1, T, T]
    return jax.nn.dot_product_attention(
        q,
        k,
        v,
        mask=same,
        scale=scale,
        is_causal=True,
        local_window_size=(window - 1, 0) if window else None,
        implementation=implementation,
    )


def _splash(q, k, v, segment_ids, *, window, scale, softcap):
    """The splash kernel per batch row (vmap), under ``shard_map`` inside a mesh: batch
    over the batch axes, heads over the tensor axis (KV heads repeated when they do not
    split evenly)."""
    b, t, h, d = q.shape
    q = (q * jnp.asarray(scale, q.dtype)).transpose(0, 2, 1, 3)  # [B, H, T, D]
    k, v = k.transpose(0, 2, 1, 3), v.transpose(0, 2, 1, 3)  # [B, K, T, D]
    interpret = jax.default_backend() != "tpu"
    if interpret:
        logging.log_first_n(logging.WARNING, "attention='splash' off TPU: interpret mode", 1)

    def local(q, k, v, seg):
        kernel = _splash_kernel(q.shape[1], t, window, softcap, interpret)
        row = lambda q, k, v, s: kernel(q, k, v, segment_ids=splash.SegmentIds(q=s, kv=s))
        return jax.vmap(row)(q, k, v, seg)

    mesh = jax.sharding.get_abstract_mesh()
    if mesh.empty:
        out = local(q, k, v, segment_ids)
    else:
        q_spec = fit_spec(logical_to_mesh(("batch", "heads", None, None), mesh.axis_names),
                          q.shape, mesh)  # fmt: skip
        kv_spec = fit_spec(logical_to_mesh(("batch", "kv_heads", None, None), mesh.axis_names),
                           k.shape, mesh)  # fmt: skip
        if kv_spec != q_spec:  # KV heads do not split like query heads: one per query head
            k, v = (jnp.repeat(x, h // k.shape[1], axis=1) for x in (k, v))
            kv_spec = q_spec
        seg_spec = jax.sharding.PartitionSpec(q_spec[0], None)
        out = jax.shard_map(
            local,
            mesh=mesh,
            in_specs=(q_spec, kv_spec, kv_spec, seg_spec),
            out_specs=q_spec,
            check_vma=False,
        )(q, k, v, segment_ids)
    return out.transpose(0, 2, 1, 3)


def _splash_kernel(heads: int, t: int, window: int, softcap, interpret: bool):
    """A splash kernel for ``heads`` query heads over ``t`` tokens: causal, and local
    (``window`` - 1 keys back) when ``window`` > 0."""
    if window:
        one = splash_mask.LocalMask((t, t), window_size=(window - 1, 0), offset=0)
    else:
        one = splash_mask.CausalMask((t, t))
    block = next(s for s in SPLASH_BLOCKS if t % s == 0)
    sizes = splash.BlockSizes(
        block_q=block,
        block_kv=block,
        block_kv_compute=block,
        block_q_dkv=block,
        block_kv_dkv=block,
        block_kv_dkv_compute=block,
        block_q_dq=block,
        block_kv_dq=block,
    )
    return splash.make_splash_mha(
        splash_mask.MultiHeadMask([one] * heads),
        block_sizes=sizes,
        head_shards=1,
        q_seq_shards=1,
        attn_logits_soft_cap=softcap,
        interpret=interpret,
    )
