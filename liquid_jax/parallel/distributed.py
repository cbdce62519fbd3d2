"""Multi-host start: ``jax.distributed`` from TPU metadata, SLURM, or explicit flags."""

from __future__ import annotations

import glob
import os

import jax
from absl import logging

from liquid_jax.errors import ConfigError


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else None


def _on_tpu_vm() -> bool:
    """Cloud TPU VMs expose their chips as /dev/accel* (v4, v5p) or /dev/vfio (v5e, v6e)."""
    return bool(glob.glob("/dev/accel[0-9]*") or glob.glob("/dev/vfio/[0-9]*"))


def initialize_distributed(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    local_device_ids: list[int] | None = None,
) -> bool:
    """Starts ``jax.distributed`` when the job spans several processes.

    Order of precedence: explicit arguments; ``LIQUID_COORDINATOR`` /
    ``LIQUID_NUM_PROCESSES`` / ``LIQUID_PROCESS_ID``; then JAX's own cluster detection
    when ``LIQUID_DISTRIBUTED=1``, under SLURM (``SLURM_NTASKS`` > 1), or on a Cloud TPU
    VM (one host or a pod slice). Returns True when a multi-process runtime is active.
    A single process with no cluster variables is left alone.
    """
    coordinator_address = coordinator_address or os.environ.get("LIQUID_COORDINATOR")
    if num_processes is None:
        num_processes = _env_int("LIQUID_NUM_PROCESSES")
    if process_id is None:
        process_id = _env_int("LIQUID_PROCESS_ID")

    if coordinator_address:
        if num_processes is None or process_id is None:
            raise ConfigError(
                "a coordinator address needs num_processes and process_id "
                "(flags or LIQUID_NUM_PROCESSES / LIQUID_PROCESS_ID)"
            )
        kwargs = {}
        if local_device_ids is not None:
            kwargs["local_device_ids"] = local_device_ids
        jax.distributed.initialize(coordinator_address, num_processes, process_id, **kwargs)
    elif (
        os.environ.get("LIQUID_DISTRIBUTED") == "1"
        or (_env_int("SLURM_NTASKS") or 1) > 1
        or os.environ.get("TPU_WORKER_HOSTNAMES")
        or _on_tpu_vm()
    ):
        # JAX's cluster detection reads SLURM_* and the TPU metadata server itself.
        jax.distributed.initialize()
    else:
        return False
    logging.info(
        "jax.distributed: process %d of %d, %d local / %d global devices",
        jax.process_index(),
        jax.process_count(),
        jax.local_device_count(),
        jax.device_count(),
    )
    return True


def barrier(name: str, timeout_s: int = 1800) -> None:
    """Waits until every process reaches ``name`` (a no-op with one process).

    Goes through the coordination service, not a device collective: XLA:CPU's gloo
    collectives give up when one process arrives 30 s after another, which a slow
    compile on a busy host easily causes, so processes line up here first.
    """
    if jax.process_count() == 1:
        return
    # Orbax (about 0.2 s) only on multi-process runs.
    from orbax.checkpoint import multihost

    multihost.sync_global_processes(name, timeout=timeout_s)


def any_process(flag: bool, key: str, timeout_s: int = 1800) -> bool:
    """True on every process when ``flag`` is True on any of them (``flag`` alone with one
    process). ``key`` names this one decision and must be new each time (e.g. carry the
    step): every process calls it with the same ``key``.

    Goes through the coordination service's key-value store and a barrier, on the host:
    no device collective, so it does not wait for the steps already dispatched.
    """
    if jax.process_count() == 1:
        return bool(flag)
    # Orbax (about 0.2 s) only on multi-process runs; its handle on jax.distributed's client.
    from orbax.checkpoint import multihost

    client = multihost.get_jax_distributed_client()
    client.key_value_set(f"{key}/{jax.process_index()}", "1" if flag else "0")
    client.wait_at_barrier(key, timeout_in_ms=timeout_s * 1000)
    votes = [value for _, value in client.key_value_dir_get(f"{key}/")]
    # Every process has read this key's votes once it passes the next decision's barrier;
    # each removes its own vote then (see PreemptionGuard), keeping the store small.
    return "1" in votes


def forget_vote(key: str) -> None:
    """Removes this process's vote of an ``any_process(..., key)`` every process has read."""
    if jax.process_count() == 1:
        return
    # Orbax only on multi-process runs (see any_process).
    from orbax.checkpoint import multihost

    multihost.get_jax_distributed_client().key_value_delete(f"{key}/{jax.process_index()}")
