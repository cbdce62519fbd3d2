"""``loss.chunked_loss_sums`` (the LM head a chunk of positions at a time, from the final
hidden states) against ``loss.loss_sums`` on the whole logits: the same sums and the same
gradient of every parameter, and a compiled train step that holds less memory.

The batch packs segments with padding, prompt positions out of the loss and three tasks;
the model is Gemma2 (final logit soft-cap, tied head) or Qwen2 (untied ``lm_head``).

Mutations tried (each fails ``test_chunked_sums_and_gradients_equal_the_full_loss``):
- targets not shifted (``batch["tokens"]`` padded at the end instead of ``[:, 1:]``);
- no ``[:, : t - 1]`` slice, so the padded last position's values reach the sums (a
  shape error) or the chunk padding is scored;
- the head without the soft-cap (``hidden @ embedding.T`` instead of ``model.head``).
"""

import re

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import nnx

from liquid_jax.data.formats import TASK_I2T, TASK_T2I, TASK_TEXT
from liquid_jax.models import Transformer
from liquid_jax.parallel import MeshConfig, create_sharded, make_mesh
from liquid_jax.train.loss import chunked_loss_sums, loss_sums, metrics_from_sums, objective
from liquid_jax.train.optimizer import make_optimizer
from liquid_jax.train.train_state import create_train_state
from liquid_jax.train.train_step import StepConfig, jit_train_step, make_eval_step
from tests.tiny import tiny_spec

B, T = 3, 23


def _packed_batch(vocab: int, seed: int = 0) -> dict:
    """Rows of 2-3 segments of mixed tasks, trailing padding, prompts out of the loss."""
    rng = np.random.default_rng(seed)
    tokens = rng.integers(1, vocab, (B, T)).astype(np.int32)
    seg, pos, mask, task = (np.zeros((B, T), np.int32) for _ in range(4))
    layouts = [[(0, 9, TASK_TEXT), (9, 20, TASK_T2I)], [(0, 14, TASK_I2T)],
               [(0, 5, TASK_TEXT), (5, 12, TASK_T2I), (12, 23, TASK_I2T)]]  # fmt: skip
    for r, segments in enumerate(layouts):
        for i, (a, b, k) in enumerate(segments):
            seg[r, a:b], pos[r, a:b], task[r, a:b] = i + 1, np.arange(b - a), k
            prompt = 1 if k == TASK_TEXT else (b - a) // 2  # a segment's first token: never
            mask[r, a + prompt : b] = 1
        tokens[r, segments[-1][1] :] = 0
    return dict(tokens=tokens, loss_mask=mask, segment_ids=seg, positions=pos, task=task)


def _full_sums(model, batch, max_z):
    logits = model(batch["tokens"], positions=batch["positions"], segment_ids=batch["segment_ids"])
    return loss_sums(logits, batch, max_z)


def _chunked_sums(model, batch, max_z, chunk):
    hidden = model.hidden_states(
        batch["tokens"], positions=batch["positions"], segment_ids=batch["segment_ids"]
    )
    return chunked_loss_sums(model.head, hidden, batch, max_z, chunk)


def _value_and_grads(model, sums_fn, with_hlo=False):
    """(objective, sums, gradients[, the compiled program's text])."""
    gdef, params, rest = nnx.split(model, nnx.Param, ...)

    def f(p):
        sums = sums_fn(nnx.merge(gdef, p, rest))
        return objective(sums, jnp.float32(40.0), 1e-2), sums

    compiled = jax.jit(jax.value_and_grad(f, has_aux=True)).lower(params).compile()
    (value, sums), grads = compiled(params)
    return (value, sums, grads) + ((compiled.as_text(),) if with_hlo else ())


@pytest.mark.parametrize("family", ["gemma2", "qwen2"])
@pytest.mark.parametrize("chunk", [5, 8, 64])  # 23 positions: 5 chunks of 5, 3 of 8, one
def test_chunked_sums_and_gradients_equal_the_full_loss(family, chunk):
    model = Transformer(tiny_spec(family), rngs=nnx.Rngs(1))
    batch = _packed_batch(model.spec.vocab_size)
    max_z = 1e-2
    want_value, want, want_grads = _value_and_grads(model, lambda m: _full_sums(m, batch, max_z))
    got_value, got, got_grads = _value_and_grads(
        model, lambda m: _chunked_sums(m, batch, max_z, chunk)
    )
    assert set(got) == set(want)
    assert float(want["weight_t2i"]) > 0 and float(want["weight_i2t"]) > 0
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=1e-5, atol=1e-6, err_msg=key)
    np.testing.assert_allclose(got_value, want_value, rtol=1e-5)
    _assert_grads_close(got_grads, want_grads)
    m_want, m_got = metrics_from_sums(want, max_z), metrics_from_sums(got, max_z)
    assert set(m_got) == set(m_want)
    for key in m_want:
        np.testing.assert_allclose(m_got[key], m_want[key], rtol=1e-5, err_msg=key)


OPTIM = ml_collections.ConfigDict(dict(
    lr=1e-3, warmup=0, schedule="constant", b1=0.9, b2=0.95, eps=1e-8,
    weight_decay=0.0, grad_clip=0.0, freeze=(),
))  # fmt: skip


def _four_rows(vocab: int) -> dict:
    """``_packed_batch`` and the first row of another: 4 rows, which a data axis of 2 splits."""
    a, b = _packed_batch(vocab), _packed_batch(vocab, seed=1)
    return {k: np.concatenate([a[k], b[k][:1]]) for k in a}


def _vocab_parallel_sums(model, batch, max_z, chunk):
    hidden = model.hidden_states(
        batch["tokens"], positions=batch["positions"], segment_ids=batch["segment_ids"]
    )
    return chunked_loss_sums(model.vocab_parallel_head(), hidden, batch, max_z, chunk)


@pytest.mark.parametrize("family", ["gemma2", "qwen2"])
def test_vocab_parallel_head_on_a_mesh_equals_the_full_loss(cpu_devices, family):
    """The train step's chunked loss on a data 2 x fsdp 2 x tensor 2 mesh, the head's
    vocabulary split 4 ways (``loss_vocab``) and each chunk's rows 2 ways (``loss_batch``):
    the same sums, argmax accuracy and gradients as the whole logits on one device, and
    the compiled program never gathers the head's whole weight (tied embedding for
    Gemma2, ``lm_head`` for Qwen2).
    """
    spec = tiny_spec(family, tie_embeddings=family == "gemma2")
    mesh = make_mesh(MeshConfig(data=2, fsdp=2, tensor=2))
    plain = Transformer(spec, rngs=nnx.Rngs(1))
    sharded = create_sharded(lambda: Transformer(spec, rngs=nnx.Rngs(1)), mesh)
    batch = _four_rows(spec.vocab_size)
    max_z = 1e-2
    want_value, want, want_grads = _value_and_grads(plain, lambda m: _full_sums(m, batch, max_z))
    with jax.set_mesh(mesh):
        sums_fn = lambda m: _vocab_parallel_sums(m, batch, max_z, 8)  # noqa: E731
        got_value, got, got_grads, hlo = _value_and_grads(sharded, sums_fn, with_hlo=True)
    np.testing.assert_allclose(got_value, want_value, rtol=1e-5)
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=1e-5, atol=1e-6, err_msg=key)
    _assert_grads_close(got_grads, want_grads)
    gathered = re.findall(r"= \w+\[([\d,]*)\]\S* all-gather\(", hlo)
    d, v = spec.hidden_size, spec.padded_vocab_size
    assert gathered, "the chunks' hidden states are gathered over the vocabulary split"
    assert not {f"{v},{d}", f"{d},{v}"} & set(gathered), gathered


def _assert_grads_close(got_grads, want_grads) -> None:
    for name, g in nnx.to_flat_state(want_grads):
        got_g = got_grads
        for part in name:
            got_g = got_g[part]
        g, got_g = np.asarray(g[...]), np.asarray(got_g[...])
        scale = np.abs(g).max()
        assert scale > 0, name
        np.testing.assert_allclose(got_g, g, rtol=0, atol=1e-5 * scale, err_msg=str(name))


def test_eval_step_takes_the_chunk_and_without_max_z_there_is_no_z():
    spec = tiny_spec("gemma2")
    mesh = make_mesh(MeshConfig(data=1, num_devices=1))
    obj = create_train_state(
        lambda: Transformer(spec, rngs=nnx.Rngs(2)), lambda p: make_optimizer(OPTIM, 10), mesh
    )
    graphdef, state = nnx.split(obj)
    batch = _packed_batch(spec.vocab_size, seed=3)
    want = jax.jit(make_eval_step(graphdef, 0.0))(state, batch)
    got = jax.jit(make_eval_step(graphdef, 0.0, loss_chunk=7))(state, batch)
    assert "z" not in want and set(got) == set(want)
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=1e-5, atol=1e-6, err_msg=key)


def _compiled_temporaries(loss_chunk: int, vocab: int = 8192, t: int = 128) -> int:
    spec = tiny_spec("qwen2", vocab_size=vocab, hidden_size=32, intermediate_size=64)
    mesh = make_mesh(MeshConfig(data=1, num_devices=1))
    obj = create_train_state(
        lambda: Transformer(spec, rngs=nnx.Rngs(0)), lambda p: make_optimizer(OPTIM, 10), mesh
    )
    graphdef, state = nnx.split(obj)
    batch = {
        k: jax.ShapeDtypeStruct((4, t), jnp.int32)
        for k in ("tokens", "loss_mask", "segment_ids", "positions", "task")
    }
    cfg = StepConfig(max_z_weight=1e-4, loss_chunk=loss_chunk)
    with jax.set_mesh(mesh):
        compiled = jit_train_step(graphdef, state, cfg, mesh).lower(state, batch).compile()
    return compiled.memory_analysis().temp_size_in_bytes


def test_chunked_step_holds_less_than_the_whole_logits():
    """A small model with a wide vocabulary: the [B, T, V] float32 logits (16 MiB here)
    dominate the full step's temporaries; chunks of 16 positions hold an eighth of them.

    Mutation tried: ``chunked_loss_sums`` without ``jax.checkpoint`` (the scan keeps every
    chunk's logits for the backward) fails here."""
    full, chunked = _compiled_temporaries(0), _compiled_temporaries(16)
    logits_bytes = 4 * 128 * 8192 * 4
    assert full > logits_bytes
    assert chunked < full - logits_bytes, (full, chunked)
