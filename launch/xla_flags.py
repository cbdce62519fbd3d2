"""The XLA flags the launchers give accelerator jobs: collectives that overlap compute.

FSDP inside a scanned layer stack all-gathers each layer's weights and reduce-scatters
its gradients; without these flags XLA runs those collectives in line and the chips wait
for the network. The GPU set turns on the latency-hiding scheduler and pipelines the
collectives across loop iterations (XLA's ``-O1`` group); the TPU set (for libtpu, via
``LIBTPU_INIT_ARGS``) fuses the all-gathers into the compute around them ("continuation
fusion") and sizes scoped VMEM for dense models.

Flags the user sets win: the defaults come first and XLA takes the last value of a flag
(``XLA_FLAGS="... ${XLA_FLAGS:-}"``; ``--env LIBTPU_INIT_ARGS=...`` is appended after the
TPU defaults). ``--no_xla_flags`` on either launcher leaves them out.
"""

from __future__ import annotations

GPU_XLA_FLAGS = (
    "--xla_gpu_enable_latency_hiding_scheduler=true",
    "--xla_gpu_enable_highest_priority_async_stream=true",
    "--xla_gpu_enable_pipelined_all_gather=true",
    "--xla_gpu_enable_pipelined_reduce_scatter=true",
    "--xla_gpu_enable_pipelined_all_reduce=true",
    "--xla_gpu_enable_while_loop_double_buffering=true",
)
# One CUDA queue keeps the scheduler's order of compute and collectives on the device.
GPU_ENV = {"CUDA_DEVICE_MAX_CONNECTIONS": "1"}

TPU_LIBTPU_ARGS = (
    "--xla_tpu_enable_async_collective_fusion=true",
    "--xla_tpu_enable_async_collective_fusion_fuse_all_gather=true",
    "--xla_tpu_enable_async_collective_fusion_multiple_steps=true",
    "--xla_tpu_overlap_compute_collective_tc=true",
    "--xla_enable_async_all_gather=true",
    "--xla_tpu_scoped_vmem_limit_kib=98304",
)


def joined(defaults: tuple[str, ...], user: str = "") -> str:
    """The defaults, then the user's flags (which win: XLA keeps a flag's last value)."""
    return " ".join([*defaults, *user.split()])
