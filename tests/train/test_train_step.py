"""The pure train step: NaN guard, gradient accumulation, frozen rows, the batch check."""

import jax
import ml_collections
import numpy as np
import pytest
from flax import nnx
from jax.sharding import PartitionSpec as P

from liquid_jax.models import Transformer, TransformerSpec
from liquid_jax.parallel import MeshConfig, make_mesh
from liquid_jax.parallel.host_batch import batch_sharding
from liquid_jax.train.optimizer import make_optimizer
from liquid_jax.train.train_state import create_train_state
from liquid_jax.train.train_step import StepConfig, check_batch, jit_train_step, micro_batches

SPEC = TransformerSpec.for_family(
    "llama",
    vocab_size=100,
    hidden_size=32,
    intermediate_size=64,
    num_layers=2,
    num_heads=4,
    num_kv_heads=2,
    head_dim=8,
)


def _optim(**over):
    c = ml_collections.ConfigDict(
        dict(
            lr=1e-2,
            warmup=0,
            schedule="constant",
            b1=0.9,
            b2=0.99,
            eps=1e-8,
            weight_decay=0.0,
            grad_clip=0.0,
            freeze=(),
        )
    )
    c.update(over)
    return c


def _state(mesh, new_rows_only_below=None, **optim):
    obj = create_train_state(
        lambda: Transformer(SPEC, rngs=nnx.Rngs(0)),
        lambda params: make_optimizer(
            _optim(**optim), 100, params, new_rows_only_below=new_rows_only_below
        ),
        mesh,
    )
    return nnx.split(obj)


def _batch(seed=0, bad=False):
    rng = np.random.default_rng(seed)
    tokens = rng.integers(0, 100, (4, 16)).astype(np.int32)
    if bad:  # an id past the padded table gathers NaN: a non-finite loss and gradient
        tokens[0, 3] = 10_000
    return {
        "tokens": tokens,
        "loss_mask": np.ones((4, 16), np.int32),
        "segment_ids": np.ones((4, 16), np.int32),
        "positions": np.tile(np.arange(16, dtype=np.int32), (4, 1)),
        "task": np.zeros((4, 16), np.int32),
    }


def _params(state):
    return [np.asarray(x) for x in jax.tree.leaves(state["model"])]


def test_nonfinite_step_is_skipped_and_counted(cpu_devices):
    mesh = make_mesh(MeshConfig(data=2, num_devices=2))
    graphdef, state = _state(mesh)
    step = jit_train_step(graphdef, state, StepConfig(), mesh)
    before = _params(state)
    state, m = step(state, _batch(bad=True))
    assert int(m["skipped"]) == 1 and int(m["nonfinite_in_a_row"]) == 1
    for x, y in zip(before, _params(state)):
        np.testing.assert_array_equal(x, y)
    state, m = step(state, _batch(seed=1))
    assert int(m["skipped"]) == 0 and int(m["nonfinite_in_a_row"]) == 0
    assert np.isfinite(float(m["loss"]))
    assert int(state["nonfinite_total"][...]) == 1
    assert any(not np.array_equal(x, y) for x, y in zip(before, _params(state)))


def test_gradient_accumulation_matches_one_big_batch(cpu_devices):
    mesh = make_mesh(MeshConfig(data=1, num_devices=1))
    out = []
    for accum in (1, 2):
        graphdef, state = _state(mesh)
        step = jit_train_step(graphdef, state, StepConfig(grad_accum=accum), mesh)
        state, m = step(state, _batch())
        out.append((float(m["loss"]), _params(state)))
    assert out[0][0] == pytest.approx(out[1][0], rel=1e-6)
    for x, y in zip(out[0][1], out[1][1]):
        np.testing.assert_allclose(x, y, atol=1e-5)  # Adam normalises rounding noise too


def test_micro_batches_stay_on_every_device_without_moving_rows(cpu_devices):
    """Micro-batch i is rows i, i + k, ...: with rows in contiguous blocks per device,
    every device holds a slice of each micro-batch, and splitting moves no data."""
    mesh = make_mesh(MeshConfig(data=4, fsdp=2, num_devices=8))
    k, rows = 2, 32
    x = np.arange(rows * 3, dtype=np.int32).reshape(rows, 3)
    with jax.set_mesh(mesh):
        split = jax.jit(lambda x: micro_batches(x, k), in_shardings=batch_sharding(mesh, 2))
        out = split(x)
        hlo = split.lower(x).compile().as_text()
    np.testing.assert_array_equal(out, np.stack([x[0::2], x[1::2]]))
    assert out.sharding.spec == P(None, ("data", "fsdp"))
    for collective in ("all-to-all", "collective-permute", "all-gather"):
        assert collective not in hlo, collective


def test_new_rows_only_and_freeze_leave_the_rest_fixed(cpu_devices):
    """With weight decay on, as the train loop builds it: the text rows stay bit for bit.
    (Without ``make_optimizer(new_rows_only_below=...)`` AdamW's decay moved them.)"""
    mesh = make_mesh(MeshConfig(data=1, num_devices=1))
    graphdef, state = _state(mesh, 90, freeze=(r"layers\.",), weight_decay=0.1)
    emb = np.asarray(state["model"]["embed_tokens"]["embedding"][...])
    layer = np.asarray(state["model"]["layers"]["mlp"]["up_proj"]["kernel"][...])
    step = jit_train_step(graphdef, state, StepConfig(new_rows_only_below=90), mesh)
    state, _ = step(state, _batch())
    new_emb = np.asarray(state["model"]["embed_tokens"]["embedding"][...])
    np.testing.assert_array_equal(new_emb[:90], emb[:90])
    assert not np.array_equal(new_emb[90:100], emb[90:100])
    np.testing.assert_array_equal(
        np.asarray(state["model"]["layers"]["mlp"]["up_proj"]["kernel"][...]), layer
    )


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("loss_mask", np.ones((4, 16), np.float32), r"float32 but expected int32.*\['loss_mask'\]"),
        ("task", np.zeros((4, 8), np.int32), r"\(4, 8\) but expected \(4, 16\).*\['task'\]"),
        ("positions", np.zeros((4, 16, 1), np.int32), r"rank 3.*\['positions'\]"),
    ],
)
def test_a_wrong_batch_fails_at_trace_time_naming_the_key(cpu_devices, key, value, message):
    """chex at the step boundary: the compile stops on a batch that is not int32[B, T]."""
    mesh = make_mesh(MeshConfig(data=1, num_devices=1))
    graphdef, state = _state(mesh)
    step = jit_train_step(graphdef, state, StepConfig(), mesh)
    with pytest.raises(AssertionError, match=message):
        step(state, {**_batch(), key: value})


def test_batch_keys_and_micro_batches_are_checked():
    with pytest.raises(ValueError, match=r"missing \['task'\]"):
        check_batch({k: v for k, v in _batch().items() if k != "task"})
    with pytest.raises(ValueError, match="grad_accum=3"):
        check_batch(_batch(), grad_accum=3)
    check_batch(_batch(), grad_accum=2)


def test_step_config_from_the_train_section():
    train = ml_collections.ConfigDict(
        dict(grad_accum=4, max_z_weight=2e-4, new_rows_only=True, loss_chunk=256)
    )
    assert StepConfig.from_config(train, text_vocab_size=90) == StepConfig(4, 2e-4, 90, 256)
    train.new_rows_only = False
    assert StepConfig.from_config(train, text_vocab_size=90).new_rows_only_below is None
