"""Model FLOPs per token and the device peaks MFU is measured against."""

from __future__ import annotations

import jax

from liquid_jax.models.spec import TransformerSpec

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


def device_peak_flops(device: jax.Device | None = None, override: float | None = None):
    """(peak FLOP/s of one device, where the figure came from)."""
    if override:
        return float(override), "config train.peak_flops"
    device = device or jax.devices()[0]
    kind = getattr(device, "device_kind", "") or ""
    for name, peak in sorted(PEAK_FLOPS.items(), key=lambda kv: -len(kv[0])):
        if kind.startswith(name):
            return peak, f"{name} data sheet (bf16 dense)"
    if device.platform == "cpu":
        return CPU_PEAK_FLOPS, "assumed 100 GFLOP/s per CPU device"
    return 0.0, f"unknown device kind {kind!r} (set train.peak_flops)"


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
