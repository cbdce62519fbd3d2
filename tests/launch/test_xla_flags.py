"""The launchers' XLA flags: the GPU set is known to the installed jaxlib (XLA stops on an
unknown flag), users' own flags come after the defaults (XLA keeps a flag's last value),
and ``--no_xla_flags`` leaves them out."""

import os
import subprocess
import sys

import pytest

from launch import slurm, tpu_pod
from launch.xla_flags import GPU_XLA_FLAGS, TPU_LIBTPU_ARGS, joined

SLURM_ARGS = ["--config", "configs/smoke.py", "--workdir", "/w", "--log_dir", "/l", "--dry_run"]


def _script(capsys, *extra) -> str:
    slurm.main([*SLURM_ARGS, *extra])
    return capsys.readouterr().out


def test_every_gpu_flag_is_known_to_this_jaxlib():
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": joined(GPU_XLA_FLAGS)}
    code = "import jax; print(int(jax.numpy.ones(3).sum()))"
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0 and proc.stdout.strip() == "3", proc.stderr[-2000:]
    env["XLA_FLAGS"] = "--xla_gpu_no_such_flag=true"  # the check above can fail
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert proc.returncode != 0 and "Unknown flag" in proc.stderr


def test_slurm_script_sets_the_gpu_flags_before_the_users(capsys, tmp_path):
    script = _script(capsys)
    line = next(x for x in script.splitlines() if x.startswith("export XLA_FLAGS="))
    assert line == f'export XLA_FLAGS="{joined(GPU_XLA_FLAGS)} ${{XLA_FLAGS:-}}"'
    assert "export CUDA_DEVICE_MAX_CONNECTIONS=${CUDA_DEVICE_MAX_CONNECTIONS:-1}" in script
    # The user's value of a flag comes last, so it is the one XLA keeps.
    user = "--xla_gpu_enable_latency_hiding_scheduler=false"
    out = subprocess.run(["bash", "-c", f'{line}; echo "$XLA_FLAGS"'], capture_output=True,
                         text=True, env={"XLA_FLAGS": user}, check=True).stdout.split()  # fmt: skip
    assert out == [*GPU_XLA_FLAGS, user]
    assert "export XLA_FLAGS" not in _script(capsys, "--no_xla_flags")


def test_tpu_workers_get_libtpu_args_with_the_users_last():
    env = tpu_pod.worker_env(["LIBTPU_INIT_ARGS=--xla_tpu_scoped_vmem_limit_kib=65536", "A=b"])
    assert env["A"] == "b"
    args = env["LIBTPU_INIT_ARGS"].split()
    assert args == [*TPU_LIBTPU_ARGS, "--xla_tpu_scoped_vmem_limit_kib=65536"]
    assert tpu_pod.worker_env(["A=b"], xla_flags=False) == {"A": "b"}
    with pytest.raises(SystemExit, match="not KEY=VALUE"):
        tpu_pod.worker_env(["LIBTPU_INIT_ARGS"])
