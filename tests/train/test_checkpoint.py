import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from liquid_jax.train.checkpoint import Checkpointer
from liquid_jax.train.metrics import MetricWriter


def _state(seed):
    k = jax.random.key(seed)
    return {"w": jax.random.normal(k, (4, 8)), "step": jnp.int32(seed)}


def test_save_restore_keeps_latest_and_data_state(tmp_path):
    ckpt = Checkpointer(str(tmp_path), keep=2)
    for step in (1, 2, 3):
        assert ckpt.save(step, _state(step), data_state={"pos": step * 10}, meta={"s": step})
    ckpt.wait()
    assert ckpt.all_steps() == [2, 3]
    step, state, data, meta = ckpt.restore(_state(0))
    assert step == 3 and data == {"pos": 30} and meta == {"s": 3}
    np.testing.assert_array_equal(state["w"], _state(3)["w"])
    ckpt.close()


def test_interrupted_save_is_never_latest(tmp_path):
    ckpt = Checkpointer(str(tmp_path), keep=3, async_save=False)
    ckpt.save(5, _state(5), data_state={"pos": 1})
    ckpt.close()
    # What a save killed half-way leaves behind: Orbax's temporary directory for step 6,
    # holding part of the arrays but never renamed into place.
    partial = os.path.join(ckpt.directory, "6.orbax-checkpoint-tmp-1234567")
    os.makedirs(os.path.join(partial, "state"))
    with open(os.path.join(partial, "state", "garbage"), "w") as f:
        f.write("half")
    reopened = Checkpointer(str(tmp_path))
    assert reopened.latest_step() == 5
    step, state, data, _ = reopened.restore(_state(0))
    assert step == 5 and data == {"pos": 1}
    np.testing.assert_array_equal(state["w"], _state(5)["w"])


def test_restore_without_checkpoint_names_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="no complete checkpoint"):
        Checkpointer(str(tmp_path)).restore(_state(0))


def test_metrics_jsonl_truncates_on_resume(tmp_path):
    w = MetricWriter(str(tmp_path), tensorboard=False)
    for s in (1, 2, 3, 4):
        w.write_scalars(s, {"loss": jnp.float32(s)})
    w = MetricWriter(str(tmp_path), resume_step=2, tensorboard=False)
    w.write_scalars(3, {"loss": 7.0})
    rows = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [(r["step"], r["loss"]) for r in rows] == [(1, 1.0), (2, 2.0), (3, 7.0)]
