"""One trained smoke run shared by the tests that only read a finished run."""

import pytest

from configs.smoke import get_config
from liquid_jax.train.loop import train


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    """``(workdir, last metrics)`` of a 40-step smoke run that keeps checkpoints 20 and 40
    and logs the validation loss of the in-memory model at both."""
    workdir = tmp_path_factory.mktemp("smoke_run")
    config = get_config("steps=40")
    config.eval_every_steps = config.checkpoint_every_steps = 20
    last = train(config, str(workdir))
    return str(workdir), last
