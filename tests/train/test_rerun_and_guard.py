"""A rerun of a finished ``train`` says so and changes nothing but the saved config; the
preemption guard of one process answers from its own signal."""

import json
import logging
import os
import signal

import pytest

from configs.smoke import get_config as smoke_config
from liquid_jax.train.loop import NonFiniteError, train
from liquid_jax.train.preemption import PreemptionGuard


def test_a_rerun_of_a_finished_run_does_nothing(smoke_run, caplog):
    workdir, _ = smoke_run
    metrics = os.path.join(workdir, "metrics.jsonl")
    with open(metrics) as f:
        before = f.read()
    config = smoke_config("steps=40")
    config.eval_every_steps = config.checkpoint_every_steps = 20
    with caplog.at_level(logging.INFO, logger="absl"):
        assert train(config, workdir) == {}
    assert "already at step 40 of 40; nothing to do" in caplog.text
    with open(metrics) as f:
        assert f.read() == before
    with open(os.path.join(workdir, "train_config.json")) as f:
        saved = json.load(f)
    assert saved["total_steps"] == 40 and saved["data"]["seq_len"] == config.data.seq_len


def test_one_process_stops_on_its_own_sigterm():
    with PreemptionGuard() as guard:
        assert not guard.should_stop(1)
        os.kill(os.getpid(), signal.SIGTERM)
        assert guard.requested and guard.should_stop(2)
    assert signal.getsignal(signal.SIGTERM) != guard._handle


def test_the_nonfinite_abort_stops_at_the_logged_step(tmp_path):
    """``max_nonfinite_steps=0``: the first logged step counts as too many (the vote of one
    process is its own count), and the error is a user error naming the step."""
    config = smoke_config("steps=4")
    config.log_every_steps, config.eval_every_steps = 1, 0
    config.train.max_nonfinite_steps = 0
    with pytest.raises(NonFiniteError, match="0 non-finite steps in a row at step 1;"):
        train(config, str(tmp_path))
    assert not (tmp_path / "checkpoints" / "1").exists()
