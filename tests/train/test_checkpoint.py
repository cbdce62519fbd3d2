import json
import logging
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from liquid_jax.runs.checkpoints import NoIntactCheckpointError, restore_subtree
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


def _tear(path):
    """What a disk filling up or a copy cut short leaves: the first half of the file."""
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(data[: len(data) // 2])


def _torn_file(step_dir, item):
    """The file to tear: ``meta``'s JSON, or the largest array data file of ``state``."""
    if item == "meta":
        return os.path.join(step_dir, "meta", "metadata")
    folder = os.path.join(step_dir, "state", "d")
    return max((os.path.join(folder, n) for n in os.listdir(folder)), key=os.path.getsize)


def _three_steps(tmp_path):
    ckpt = Checkpointer(str(tmp_path), keep=3, async_save=False)
    for step in (1, 2, 3):
        ckpt.save(step, _state(step), data_state={"pos": step}, meta={"s": step})
    ckpt.close()
    return ckpt.directory


@pytest.mark.parametrize("item", ["meta", "state"])
def test_a_torn_newest_step_walks_back_to_the_previous_one(tmp_path, caplog, item):
    directory = _three_steps(tmp_path)
    torn = _torn_file(os.path.join(directory, "3"), item)
    _tear(torn)
    ckpt = Checkpointer(str(tmp_path), async_save=False)
    with caplog.at_level(logging.WARNING):
        step, state, data, meta = ckpt.restore(_state(0))
    assert step == 2 and data == {"pos": 2} and meta == {"s": 2}
    np.testing.assert_array_equal(state["w"], _state(2)["w"])
    warning = next(r.getMessage() for r in caplog.records if "cannot be read" in r.getMessage())
    assert "step 3 in" in warning and "trying step 2" in warning
    assert f"damaged: {torn}" in warning  # a JSON error names no file: a scan finds it
    # Training goes on from step 2; its next save of step 3 replaces the torn one.
    assert ckpt.save(3, _state(30), data_state={"pos": 30}, force=True)
    ckpt.close()
    step, state, data, _ = Checkpointer(str(tmp_path)).restore(_state(0))
    assert step == 3 and data == {"pos": 30}
    np.testing.assert_array_equal(state["w"], _state(30)["w"])


def test_all_steps_torn_is_a_named_error(tmp_path):
    directory = _three_steps(tmp_path)
    for step in (1, 2, 3):
        _tear(os.path.join(directory, str(step), "meta", "metadata"))
    with pytest.raises(NoIntactCheckpointError, match="step 3: .*step 2: .*step 1: ") as e:
        Checkpointer(str(tmp_path)).restore(_state(0))
    assert str(directory) in str(e.value) and "metadata" in str(e.value)


def test_restore_subtree_walks_back_too(tmp_path):
    directory = _three_steps(tmp_path)
    _tear(_torn_file(os.path.join(directory, "3"), "state"))
    abstract = jax.ShapeDtypeStruct((4, 8), jnp.float32)
    step, w = restore_subtree(str(tmp_path), "w", abstract)
    assert step == 2
    np.testing.assert_array_equal(w, _state(2)["w"])
    with pytest.raises(NoIntactCheckpointError, match="step 3: "):
        restore_subtree(str(tmp_path), "w", abstract, step=3)
