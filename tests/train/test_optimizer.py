"""``train.optimizer``: the learning-rate schedule, clipping, the weight-decay mask and
the frozen text rows, each against a closed form or a NumPy AdamW.

Mutations tried:
- warmup fraction rounded down to 0 steps (``warmup = 0`` when ``< 1``), or the cosine
  floor dropped (``alpha=0``): ``test_schedule_*`` fail;
- ``clip_by_global_norm`` left out of the chain: ``test_adamw_matches_numpy`` fails;
- the decay mask by rank (``jnp.ndim(x) > 1``, as it was): the stacked layer norms and
  the Qwen2 biases decayed, ``test_no_decay_on_norms_and_biases`` and
  ``test_adamw_matches_numpy`` fail;
- ``keep_rows_below`` left out of ``make_optimizer``: ``test_new_rows_only_with_weight_
  decay_keeps_text_rows`` fails (AdamW's decay moved them by 3e-3 here).
"""

import chex
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest
from flax import nnx

from liquid_jax.models import Transformer
from liquid_jax.train.optimizer import learning_rate_schedule, make_optimizer, path_str
from tests.tiny import tiny_spec


def _cfg(**over):
    c = ml_collections.ConfigDict(
        dict(lr=1.0, warmup=0.0, schedule="constant", min_lr_ratio=0.0, b1=0.9, b2=0.99,
             eps=1e-8, weight_decay=0.0, grad_clip=0.0, freeze=())
    )  # fmt: skip
    c.update(over)
    return c


def test_schedule_warmup_fraction_and_cosine_floor():
    lr = learning_rate_schedule(_cfg(lr=2.0, warmup=0.1, schedule="cosine", min_lr_ratio=0.1), 100)
    # 10% of 100 steps of linear warmup from 0, then cosine from 2.0 down to 0.2 at 100.
    for step, want in ((0, 0.0), (5, 1.0), (10, 2.0), (100, 0.2), (400, 0.2)):
        assert float(lr(step)) == pytest.approx(want, abs=1e-6), step
    mid = 0.2 + 1.8 * 0.5 * (1 + np.cos(np.pi * 30 / 90))  # 30 of the 90 decay steps
    assert float(lr(40)) == pytest.approx(mid, rel=1e-6)


def test_schedule_warmup_in_steps_linear_and_constant():
    lr = learning_rate_schedule(_cfg(lr=1.0, warmup=4, schedule="linear", min_lr_ratio=0.5), 20)
    assert [round(float(lr(s)), 6) for s in (0, 2, 4, 12, 20)] == [0.0, 0.5, 1.0, 0.75, 0.5]
    flat = learning_rate_schedule(_cfg(lr=0.3), 20)
    assert float(flat(0)) == pytest.approx(0.3) and float(flat(19)) == pytest.approx(0.3)
    with pytest.raises(ValueError, match="schedule"):
        learning_rate_schedule(_cfg(schedule="step"), 20)


def _tree():
    rng = np.random.default_rng(0)
    shapes = {"embed_tokens": {"embedding": (6, 4)}, "norm": {"scale": (4,)},
              "layers": {"input_layernorm": {"scale": (2, 4)},
                         "mlp": {"up_proj": {"kernel": (2, 4, 3)}},
                         "self_attn": {"q_proj": {"bias": (2, 2, 3)}}}}  # fmt: skip
    return jax.tree.map(
        lambda s: rng.normal(size=s).astype(np.float32),
        shapes,
        is_leaf=lambda x: isinstance(x, tuple),
    )


def _numpy_adamw(params, grads_seq, *, lr, b1, b2, eps, wd, clip):
    """AdamW as the paper and optax define it; decay on kernels and embeddings only.
    Returns the parameters after the last step, a tree like ``params``."""
    paths = [path_str(p) for p, _ in jax.tree_util.tree_leaves_with_path(params)]
    p = [np.asarray(x, np.float64) for x in jax.tree.leaves(params)]
    m = [np.zeros_like(x) for x in p]
    v = [np.zeros_like(x) for x in p]
    for t, grads in enumerate(grads_seq, start=1):
        g = [np.asarray(x, np.float64) for x in jax.tree.leaves(grads)]
        norm = np.sqrt(sum((x**2).sum() for x in g))
        g = [x * min(1.0, clip / norm) for x in g]
        for i in range(len(p)):
            m[i] = b1 * m[i] + (1 - b1) * g[i]
            v[i] = b2 * v[i] + (1 - b2) * g[i] ** 2
            u = (m[i] / (1 - b1**t)) / (np.sqrt(v[i] / (1 - b2**t)) + eps)
            if paths[i].endswith(("kernel", "embedding")):
                u = u + wd * p[i]
            p[i] = p[i] - lr(t - 1) * u
    return jax.tree.unflatten(jax.tree.structure(params), p)


def test_adamw_matches_numpy():
    """Three steps with gradient norms 50, 0.3 and 5 against a clip of 1: clipping,
    bias correction, warmup and the decay mask all show in the parameters."""
    cfg = _cfg(lr=0.1, warmup=2, schedule="cosine", weight_decay=0.5, grad_clip=1.0)
    params = _tree()
    rng = np.random.default_rng(1)
    grads_seq = []
    for scale in (50.0, 0.3, 5.0):
        g = jax.tree.map(lambda x: rng.normal(size=x.shape).astype(np.float32), params)
        norm = np.sqrt(sum((x**2).sum() for x in jax.tree.leaves(g)))
        grads_seq.append(jax.tree.map(lambda x, s=scale / norm: x * s, g))
    tx = make_optimizer(cfg, 10)
    state, got, update = tx.init(params), params, jax.jit(tx.update)
    for grads in grads_seq:
        updates, state = update(grads, state, got)
        got = optax.apply_updates(got, updates)
    want = _numpy_adamw(params, grads_seq, lr=learning_rate_schedule(cfg, 10), b1=0.9, b2=0.99,
                        eps=1e-8, wd=0.5, clip=1.0)  # fmt: skip
    chex.assert_trees_all_close(got, want, rtol=2e-5, atol=1e-6)


def test_no_decay_on_norms_and_biases():
    """Zero gradients, so only weight decay acts: kernels and the embedding shrink, the
    norm scales (stacked ``[layers, d]`` ones included) and Qwen2's biases do not."""
    spec = tiny_spec("qwen2", vocab_size=64, hidden_size=16, intermediate_size=32,
                     num_heads=2, num_kv_heads=1, head_dim=8)  # fmt: skip
    abstract = nnx.state(nnx.eval_shape(lambda: Transformer(spec, rngs=nnx.Rngs(0))), nnx.Param)
    params = jax.tree.map(lambda x: jnp.full(x.shape, 0.5, x.dtype), abstract)
    tx = make_optimizer(_cfg(lr=0.1, weight_decay=0.5), 10)
    zeros = jax.tree.map(jnp.zeros_like, params)
    updates, _ = jax.jit(tx.update)(zeros, tx.init(params), params)
    moved = {
        path_str(p): bool(np.any(np.asarray(u) != 0))
        for p, u in jax.tree_util.tree_leaves_with_path(updates)
    }
    assert {n for n, m in moved.items() if m} == {
        n for n in moved if n.endswith(("kernel", "embedding"))
    }
    assert moved["layers.input_layernorm.scale"] is False
    assert moved["layers.self_attn.q_proj.bias"] is False and moved["norm.scale"] is False


def test_new_rows_only_with_weight_decay_keeps_text_rows():
    """Gradients only on image rows (as the train step masks them) and decay 0.1: the
    text rows of the embedding and LM head must not move at all."""
    params = {"embed_tokens": {"embedding": jnp.ones((10, 4))},
              "lm_head": {"kernel": jnp.ones((4, 10))}}  # fmt: skip
    grads = {"embed_tokens": {"embedding": jnp.ones((10, 4)).at[:6].set(0.0)},
             "lm_head": {"kernel": jnp.ones((4, 10)).at[:, :6].set(0.0)}}  # fmt: skip
    tx = make_optimizer(_cfg(lr=0.01, weight_decay=0.1), 10, new_rows_only_below=6)
    state, p = tx.init(params), params
    for _ in range(3):
        updates, state = tx.update(grads, state, p)
        p = optax.apply_updates(p, updates)
    np.testing.assert_array_equal(np.asarray(p["embed_tokens"]["embedding"][:6]), 1.0)
    np.testing.assert_array_equal(np.asarray(p["lm_head"]["kernel"][:, :6]), 1.0)
    assert np.all(np.asarray(p["embed_tokens"]["embedding"][6:]) < 1.0)
    assert np.all(np.asarray(p["lm_head"]["kernel"][:, 6:]) < 1.0)
