"""SLURM launcher: the rendered sbatch script of a 2-node x 8-GPU job (resources, srun
line, NCCL and JAX variables), one process per node, and a real submission through a
stand-in ``sbatch``."""

import os
import shlex
import subprocess

import pytest

from launch import slurm
from launch.common import REPO


def _dry_run(capsys, *extra):
    slurm.main(["--nodes", "2", "--gpus_per_node", "8", "--partition", "gpu",
                "--account", "acct", "--time", "48:00:00", "--job_name", "liq",
                "--log_dir", "/shared/logs", "--config", "configs/smoke.py:steps=4",
                "--workdir", "/shared/runs/r1", "--config.optim.lr=0.001", *extra,
                "--dry_run"])  # fmt: skip
    out = capsys.readouterr().out
    script = out.split("----\n", 1)[1].rsplit("# ---- end", 1)[0]
    return script, out.splitlines()[-1]


def test_two_nodes_eight_gpus_one_process_per_gpu(capsys, tmp_path):
    script, command = _dry_run(capsys, "--nccl_socket_ifname", "eth0")
    lines = script.splitlines()
    for want in ["#SBATCH --job-name=liq", "#SBATCH --nodes=2", "#SBATCH --ntasks-per-node=8",
                 "#SBATCH --gpus-per-node=8", "#SBATCH --cpus-per-task=8",
                 "#SBATCH --time=48:00:00", "#SBATCH --output=/shared/logs/%x-%j.out",
                 "#SBATCH --partition=gpu", "#SBATCH --account=acct", "#SBATCH --exclusive",
                 "export NCCL_DEBUG=${NCCL_DEBUG:-WARN}", "export NCCL_SOCKET_IFNAME=eth0",
                 f"cd {REPO}"]:  # fmt: skip
        assert want in lines, want
    assert "JAX_LOCAL_DEVICE_IDS" not in script  # JAX's SLURM default: GPU = SLURM_LOCALID
    srun = [line for line in lines if line.startswith("srun ")]
    assert len(srun) == 1
    assert shlex.split(srun[0]) == [
        "srun", "--kill-on-bad-exit=1", "--label", f"{REPO}/.venv-gpu/bin/liquid-jax", "train",
        f"--config={REPO}/configs/smoke.py:steps=4", "--workdir=/shared/runs/r1",
        "--config.optim.lr=0.001", "--expect_platform=gpu"]  # fmt: skip
    # Not dev.sh's CPU-only .venv; a venv without liquid-jax stops the job with a message.
    assert f"if [ ! -x {REPO}/.venv-gpu/bin/liquid-jax ]; then" in lines
    assert command == "+ sbatch /shared/logs/liq.sbatch"
    # The rendered script is valid bash.
    (tmp_path / "s.sh").write_text(script)
    subprocess.run(["bash", "-n", str(tmp_path / "s.sh")], check=True)


def test_one_process_per_node_lists_every_gpu(capsys):
    script, _ = _dry_run(capsys, "--per", "node", "--nccl_ib_disable")
    assert "#SBATCH --ntasks-per-node=1" in script and "#SBATCH --cpus-per-task=64" in script
    assert "export JAX_LOCAL_DEVICE_IDS=0,1,2,3,4,5,6,7" in script
    assert "export NCCL_IB_DISABLE=1" in script


def test_unknown_override_fails_before_rendering(capsys):
    with pytest.raises(SystemExit, match="unknown config key 'data.batch'"):
        slurm.main(["--config", "configs/smoke.py", "--workdir", "/w", "--config.data.batch=2",
                    "--dry_run"])  # fmt: skip
    assert "sbatch" not in capsys.readouterr().out


def test_submission_writes_the_script_and_calls_sbatch(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "sbatch"
    fake.write_text(f'#!/bin/sh\necho "$@" > {tmp_path}/sbatch_args\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    logs = tmp_path / "logs"
    slurm.main(["--config", "configs/smoke.py", "--workdir", str(tmp_path / "run"),
                "--log_dir", str(logs), "--nodes", "1"])  # fmt: skip
    assert (tmp_path / "sbatch_args").read_text().split() == [str(logs / "liquid.sbatch")]
    assert "#SBATCH --nodes=1" in (logs / "liquid.sbatch").read_text()
