"""Two processes on one machine (4 fake CPU devices each), started by the local launcher
(``launch/local.py``), train, checkpoint and resume through ``jax.distributed`` over
localhost, and agree with one process that sees the same global batches.

The one-process reference reads the two hosts' slices with the pipeline's own split
(``TwoHostIterator``); that the split itself is right (disjoint slices whose union is the
single-host stream) is checked apart, in ``tests/data/test_pipeline_hosts.py``. This one
test also covers the launcher's two-process run (it replaced a separate 4-step one).
"""

import io
import json
import os

import numpy as np
import pytest

from configs.smoke import get_config
from launch.common import liquid_args
from launch.local import run_local
from liquid_jax.data.pipeline.dataset import make_iterator
from liquid_jax.train.loop import train


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


# A rate that does not depend on total_steps, so that a run stopped at 4 and resumed to
# 6 follows the same schedule as 6 straight.
SCHEDULE = {"optim.schedule": "constant", "optim.warmup": 2}


def _two_processes(workdir, steps):
    """The smoke config for ``steps`` over 2 launcher processes x 4 devices; its output."""
    argv = liquid_args(f"configs/smoke.py:steps={steps}", str(workdir),
                       {**SCHEDULE, "log_every_steps": 1, "checkpoint_every_steps": 2,
                        "eval_every_steps": 0})  # fmt: skip
    out = io.StringIO()
    rc = run_local(argv, num_processes=2, devices_per_process=4, out=out, timeout_s=600)
    text = out.getvalue()
    assert rc == 0, text[-3000:]
    assert "[local] p0 exited with 0" in text and "[local] p1 exited with 0" in text
    assert text.count("over 8 devices (2 processes)") == 2  # both processes saw the mesh
    assert any(line.startswith("[p1] ") for line in text.splitlines())
    return text


def _losses(workdir):
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return {r["step"]: r["loss"] for r in map(json.loads, f) if "loss" in r}


@pytest.mark.slow
def test_two_processes_train_checkpoint_resume_and_match_one_process(tmp_path, cpu_devices):
    multi = tmp_path / "multi"
    _two_processes(multi, 4)  # stops at 4 with a checkpoint
    assert "resumed from step 4" in _two_processes(multi, 6)
    assert sorted(os.listdir(multi / "checkpoints"))[-1] == "6"

    config = get_config("steps=6")
    config.log_every_steps = 1
    config.eval_every_steps = 0
    config.optim.schedule, config.optim.warmup = SCHEDULE["optim.schedule"], 2
    train(config, str(tmp_path / "single"), iterator_fn=TwoHostIterator)

    multi_losses, single_losses = _losses(multi), _losses(tmp_path / "single")
    assert sorted(multi_losses) == list(range(1, 7))
    np.testing.assert_allclose(
        [multi_losses[s] for s in range(1, 7)],
        [single_losses[s] for s in range(1, 7)],
        rtol=1e-5,
    )
