"""Two processes on one machine (4 fake CPU devices each) train, checkpoint and resume
through ``jax.distributed`` over localhost, and agree with one process that sees the
same global batches."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from configs.smoke import get_config
from liquid_jax.data.pipeline import make_iterator
from liquid_jax.train.loop import train

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class TwoHostIterator:
    """What the two hosts load together, in one process: host 0's rows, then host 1's
    (the order ``host_local_to_global`` assembles them in)."""

    def __init__(self, cfg, tokenizer, layout):
        self.hosts = [
            make_iterator(cfg, tokenizer, layout, process_index=i, process_count=2)
            for i in range(2)
        ]

    def __next__(self):
        parts = [next(h) for h in self.hosts]
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    def get_state(self):
        return {"hosts": [h.get_state() for h in self.hosts]}

    def set_state(self, state):
        for h, s in zip(self.hosts, state["hosts"]):
            h.set_state(s)

    def close(self):
        for h in self.hosts:
            h.close()


def _free_port():
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _two_processes(workdir, steps):
    port = _free_port()
    procs = []
    for i in range(2):
        env = dict(os.environ, PYTHONPATH=REPO, JAX_PLATFORMS="cpu",
                   XLA_FLAGS="--xla_force_host_platform_device_count=4",
                   LIQUID_COORDINATOR=f"localhost:{port}", LIQUID_NUM_PROCESSES="2",
                   LIQUID_PROCESS_ID=str(i))  # fmt: skip
        cmd = [sys.executable, "-m", "liquid_jax.cli", "train",
               f"--config={REPO}/configs/smoke.py:steps={steps}", f"--workdir={workdir}",
               "--config.log_every_steps=1", "--config.checkpoint_every_steps=3",
               "--config.eval_every_steps=0"]  # fmt: skip
        procs.append(subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True))  # fmt: skip
    for p in procs:
        out, _ = p.communicate(timeout=600)
        assert p.returncode == 0, out[-3000:]
        assert "over 8 devices (2 processes)" in out
    return procs


def _losses(workdir):
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return {r["step"]: r["loss"] for r in map(json.loads, f) if "loss" in r}


@pytest.mark.slow
def test_two_processes_train_checkpoint_resume_and_match_one_process(tmp_path, cpu_devices):
    multi = tmp_path / "multi"
    _two_processes(multi, 6)  # stops at 6 with a checkpoint
    _two_processes(multi, 9)  # resumes at 6
    assert sorted(os.listdir(multi / "checkpoints"))[-1] == "9"

    config = get_config("steps=9")
    config.log_every_steps = 1
    config.eval_every_steps = 0
    train(config, str(tmp_path / "single"), iterator_fn=TwoHostIterator)

    multi_losses, single_losses = _losses(multi), _losses(tmp_path / "single")
    assert sorted(multi_losses) == list(range(1, 10))
    np.testing.assert_allclose(
        [multi_losses[s] for s in range(1, 10)],
        [single_losses[s] for s in range(1, 10)],
        rtol=1e-5,
    )
