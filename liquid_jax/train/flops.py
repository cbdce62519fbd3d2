"""Model FLOPs per token, and the device peaks (FLOP/s, memory bandwidth) MFU and the
decoding floor are measured against."""

from __future__ import annotations

import jax

from liquid_jax.models.spec import TransformerSpec
from liquid_jax.models.transformer import REMAT_SAVED_NAMES

# Dense bf16 peak FLOP/s per device (per chip / GPU), from the vendors' data sheets.
PEAK_FLOPS = {
    "TPU v4": 275e12,
    "TPU v5 lite": 197e12,
    "TPU v5e": 197e12,
    "TPU v5p": 459e12,
    "TPU v5": 459e12,
    "TPU v6 lite": 918e12,
    "TPU v6e": 918e12,
    "NVIDIA H100": 989e12,
    "NVIDIA H200": 989e12,
    "NVIDIA A100": 312e12,
    "NVIDIA B200": 2250e12,
}
# No data sheet for a host CPU: an order of magnitude for one core's float32 FMA units.
CPU_PEAK_FLOPS = 1e11


# Peak HBM bandwidth per device (bytes/s), data sheets: what one decoding step, which
# reads every weight once, cannot beat.
PEAK_HBM_BYTES = {
    "TPU v4": 1.2e12,
    "TPU v5 lite": 0.819e12,
    "TPU v5e": 0.819e12,
    "TPU v5p": 2.765e12,
    "TPU v5": 2.765e12,
    "TPU v6 lite": 1.64e12,
    "TPU v6e": 1.64e12,
    "NVIDIA H100": 3.35e12,
    "NVIDIA H200": 4.8e12,
    "NVIDIA A100": 2.0e12,
    "NVIDIA B200": 8.0e12,
}
CPU_HBM_BYTES = 20e9  # an order of magnitude for a host's DRAM


def _by_kind(table: dict[str, float], device: jax.Device | None):
    device = device or jax.devices()[0]
    kind = getattr(device, "device_kind", "") or ""
    for name, value in sorted(table.items(), key=lambda kv: -len(kv[0])):
        if kind.startswith(name):
            return value, name, device
    return None, kind, device


def device_hbm_bandwidth(device: jax.Device | None = None):
    """(memory bandwidth of one device in bytes/s, where the figure came from)."""
    value, name, device = _by_kind(PEAK_HBM_BYTES, device)
    if value is not None:
        return value, f"{name} data sheet"
    if device.platform == "cpu":
        return CPU_HBM_BYTES, "assumed 20 GB/s for host memory"
    return 0.0, f"unknown device kind {name!r}"


def device_peak_flops(device: jax.Device | None = None, override: float | None = None):
    """(peak FLOP/s of one device, where the figure came from)."""
    if override:
        return float(override), "config train.peak_flops"
    peak, name, device = _by_kind(PEAK_FLOPS, device)
    if peak is not None:
        return peak, f"{name} data sheet (bf16 dense)"
    if device.platform == "cpu":
        return CPU_PEAK_FLOPS, "assumed 100 GFLOP/s per CPU device"
    return 0.0, f"unknown device kind {name!r} (set train.peak_flops)"


def train_flops_per_token(spec: TransformerSpec, seq_len: int) -> float:
    """Forward + backward FLOPs per trained token: 6 x (matmul parameters) plus attention
    scores and values (12 x layers x heads x head_dim x context, halved for causality;
    packed rows attend less, so this is an upper bound)."""
    d, f, hd = spec.hidden_size, spec.intermediate_size, spec.head_dim
    attn_proj = d * hd * (2 * spec.num_heads + 2 * spec.num_kv_heads)
    mlp = 3 * d * f
    head = d * spec.padded_vocab_size
    matmul_params = spec.num_layers * (attn_proj + mlp) + head
    attention = 12 * spec.num_layers * spec.num_heads * hd * seq_len / 2
    return 6.0 * matmul_params + attention


def recompute_flops_per_token(spec: TransformerSpec, seq_len: int) -> float:
    """What the remat policy (``spec.remat``) adds to ``train_flops_per_token`` (which
    counts model FLOPs, as MFU does): the backward runs each layer's forward again, less
    the projections a named policy keeps (and less what no backward reads); attention's
    causal blocks, run as tiles under a named policy (``attention_blocks``), compute
    their scores a third time, in the tiles' backward (the matmuls exactly, counted in
    the program's jaxpr).
    The JAX policies that keep dots count as ``minimal`` (those without batch
    dimensions) or as nothing recomputed (all dots, everything)."""
    if spec.remat in ("none", "dots_saveable", "everything_saveable"):
        return 0.0
    d, f, hd = spec.hidden_size, spec.intermediate_size, spec.head_dim
    h, k = spec.num_heads, spec.num_kv_heads
    projections = {
        "query_proj": 2 * d * h * hd,
        "key_proj": 2 * d * k * hd,
        "value_proj": 2 * d * k * hd,
        "out_proj": 2 * h * hd * d,
        "mlpwi_0": 2 * d * f,
        "mlpwi_1": 2 * d * f,
        "mlpwo": 2 * f * d,
    }
    policy = "minimal" if spec.remat == "dots_with_no_batch_dims_saveable" else spec.remat
    saved = set(REMAT_SAVED_NAMES[policy])
    if not spec.sandwich_norms:
        # A pre-norm layer only adds the MLP's output to its stream: no backward reads it,
        # so it is never recomputed (nor kept).
        saved.add("mlpwo")
    layer = sum(v for name, v in projections.items() if name not in saved)
    # Scores and values, 2 x 2 x heads x head_dim x context, halved for causality.
    attention = 2 * h * hd * seq_len
    chunk = spec.attn_causal_chunk
    tiles = chunk and seq_len > chunk and seq_len % chunk == 0 and policy == spec.remat
    if tiles:  # n blocks of queries read (n + 1) / 2n of the keys, not a half
        blocks = seq_len // chunk
        attention *= 1.5 * (blocks + 1) / blocks
    return float(spec.num_layers * (layer + attention))
