"""Several ``liquid-jax`` processes on one machine, talking over localhost: the multi-host
code paths (jax.distributed, per-host data, checkpoint barriers) without a cluster.

    python launch/local.py --num_processes 2 --devices_per_process 2 \\
        --config configs/smoke.py:steps=4 --workdir /tmp/liquid_2proc \\
        --config.eval_every_steps=0

Each process gets ``LIQUID_COORDINATOR=localhost:PORT``, ``LIQUID_NUM_PROCESSES``,
``LIQUID_PROCESS_ID`` and (CPU) ``K`` fake devices through
``XLA_FLAGS=--xla_force_host_platform_device_count=K``. Output lines are prefixed with
``[pN]``. When one process fails the others are stopped (they would wait for it in the
next collective until a timeout) and the exit code is the failed one's.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TextIO

if __package__ in (None, ""):  # run as `python launch/local.py`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from launch.common import REPO, liquid_args, parse_override_args  # noqa: E402

DEVICE_FLAG = "--xla_force_host_platform_device_count"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def process_env(
    base: Mapping[str, str], index: int, count: int, port: int, devices_per_process: int
) -> dict[str, str]:
    """The environment of process ``index`` of ``count``; ``devices_per_process`` > 0 fakes
    that many CPU devices (0 leaves the platform and its devices alone)."""
    env = dict(base)
    env.update(LIQUID_COORDINATOR=f"localhost:{port}", LIQUID_NUM_PROCESSES=str(count),
               LIQUID_PROCESS_ID=str(index))  # fmt: skip
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), base.get("PYTHONPATH", "")]))
    if devices_per_process > 0:
        flags = [f for f in base.get("XLA_FLAGS", "").split() if not f.startswith(DEVICE_FLAG)]
        env["XLA_FLAGS"] = " ".join([*flags, f"{DEVICE_FLAG}={devices_per_process}"])
        env["JAX_PLATFORMS"] = "cpu"
    return env


def process_command(liquid_argv: Sequence[str], python: str = sys.executable) -> list[str]:
    return [python, "-m", "liquid_jax.cli", *liquid_argv]


def _pump(stream, prefix: str, out: TextIO, lock: threading.Lock) -> None:
    for line in stream:
        with lock:
            out.write(f"{prefix} {line}" if line.endswith("\n") else f"{prefix} {line}\n")
            out.flush()


def _stop(procs: Sequence[subprocess.Popen], grace_s: float) -> None:
    """SIGTERM (the trainer saves and stops on it), then SIGKILL after ``grace_s``."""
    for p in procs:
        if p.poll() is None:
            p.terminate()
    deadline = time.monotonic() + grace_s
    for p in procs:
        try:
            p.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def run_local(
    liquid_argv: Sequence[str],
    num_processes: int = 2,
    devices_per_process: int = 2,
    port: int | None = None,
    env: Mapping[str, str] | None = None,
    out: TextIO | None = None,
    timeout_s: float | None = None,
    grace_s: float = 10.0,
    program: Sequence[str] | None = None,
) -> int:
    """Runs ``liquid-jax <liquid_argv>`` (or any ``program``) as ``num_processes``
    cooperating processes.

    Returns 0 when all succeed, else the exit code of the first that failed (124 on
    ``timeout_s``); the others are stopped as soon as one fails.
    """
    out = out or sys.stdout
    port = port or free_port()
    base = dict(os.environ if env is None else env)
    lock, procs, pumps = threading.Lock(), [], []
    for i in range(num_processes):
        p = subprocess.Popen(
            list(program) if program else process_command(liquid_argv),
            env=process_env(base, i, num_processes, port, devices_per_process),
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
        )  # fmt: skip
        procs.append(p)
        t = threading.Thread(target=_pump, args=(p.stdout, f"[p{i}]", out, lock), daemon=True)
        t.start()
        pumps.append(t)
    t0, failed = time.monotonic(), 0
    try:
        while True:
            codes = [p.poll() for p in procs]  # poll every process (any() would stop early)
            if None not in codes:
                break
            bad = [c for c in codes if c not in (None, 0)]
            if bad:
                failed = bad[0]
                break
            if timeout_s is not None and time.monotonic() - t0 > timeout_s:
                failed = 124
                break
            time.sleep(0.1)
    finally:
        if failed or any(p.poll() is None for p in procs):
            _stop(procs, grace_s)
        for t in pumps:
            t.join(timeout=5)
    if not failed:
        failed = next((p.returncode for p in procs if p.returncode), 0)
    with lock:
        for i, p in enumerate(procs):
            out.write(f"[local] p{i} exited with {p.returncode}\n")
    return failed


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--num_processes", type=int, default=2)
    p.add_argument("--devices_per_process", type=int, default=2, help="fake CPU devices; 0: real")
    p.add_argument("--command", default="train", help="liquid-jax subcommand")
    p.add_argument("--config", required=True, help="config file[:arg]")
    p.add_argument("--workdir", required=True)
    p.add_argument("--port", type=int, default=0, help="coordinator port (0: a free one)")
    p.add_argument("--timeout_s", type=float, default=None)
    args, rest = p.parse_known_args(argv)
    overrides = parse_override_args(rest)
    liquid_argv = liquid_args(args.config, args.workdir, overrides, command=args.command)
    return run_local(liquid_argv, args.num_processes, args.devices_per_process,
                     port=args.port or None, timeout_s=args.timeout_s)  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
