"""``train.loss`` against NumPy on a hand-built packed batch of mixed tasks.

Row 0 packs a text segment and a T2I segment, row 1 an I2T segment and padding; the loss
masks are written out per token as the formats make them (a segment's first token and
the prompts are no targets). Every sum is recomputed with an explicit loop over
``(row, t)``: token ``t`` is predicted by the logits at ``t - 1``.

Mutations tried (each fails ``test_sums_match_numpy``):
- targets not shifted (``targets = batch["tokens"][:, :-1]``);
- mask taken from the input position (``batch["loss_mask"][:, :-1]``);
- max-z from the log-partition (``log_z ** 2``) instead of the max logit;
- ``objective`` dropping the z term (fails ``test_objective_and_metrics``).
"""

import jax.numpy as jnp
import numpy as np
import pytest

from liquid_jax.data.formats import TASK_I2T, TASK_T2I, TASK_TEXT
from liquid_jax.models.loss import is_argmax
from liquid_jax.train.loss import loss_sums, metrics_from_sums, objective

V = 11
T, I, X = TASK_TEXT, TASK_T2I, TASK_I2T  # noqa: E741
#            |  text: bos a b eos  |  t2i: bos cap boi c c eoi   | pad
ROW0_TOKENS = [2, 5, 6, 1, 2, 7, 8, 9, 10, 3, 0]
ROW0_MASK = [0, 1, 1, 1, 0, 0, 0, 1, 1, 1, 0]
ROW0_TASK = [T, T, T, T, I, I, I, I, I, I, T]
#            |  i2t: bos boi c eoi cap cap eos | pad pad pad pad
ROW1_TOKENS = [2, 8, 9, 3, 5, 6, 1, 0, 0, 0, 0]
ROW1_MASK = [0, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0]
ROW1_TASK = [X, X, X, X, X, X, X, T, T, T, T]


def _batch():
    return {
        "tokens": np.array([ROW0_TOKENS, ROW1_TOKENS], np.int32),
        "loss_mask": np.array([ROW0_MASK, ROW1_MASK], np.int32),
        "task": np.array([ROW0_TASK, ROW1_TASK], np.int32),
    }


def _logits(seed=0):
    return np.random.default_rng(seed).normal(0.0, 3.0, (2, len(ROW0_TOKENS), V)).astype(np.float32)


def _reference(logits, batch):
    """Sums over targets, one (row, t) at a time, in float64."""
    out = {"nll": 0.0, "z": 0.0, "weight": 0.0, "correct": 0.0}
    out.update({f"{k}_{n}": 0.0 for k in ("nll", "weight") for n in ("text", "t2i", "i2t", "vqa")})
    names = {TASK_TEXT: "text", TASK_T2I: "t2i", TASK_I2T: "i2t"}
    for r in range(2):
        for t in range(1, logits.shape[1]):
            if not batch["loss_mask"][r, t]:
                continue
            x = logits[r, t - 1].astype(np.float64)
            target = batch["tokens"][r, t]
            nll = np.log(np.exp(x - x.max()).sum()) + x.max() - x[target]
            name = names[int(batch["task"][r, t])]
            out["nll"] += nll
            out["z"] += x.max() ** 2
            out["weight"] += 1
            out["correct"] += float(np.argmax(x) == target)
            out[f"nll_{name}"] += nll
            out[f"weight_{name}"] += 1
    return out


def test_sums_match_numpy():
    batch, logits = _batch(), _logits()
    got = loss_sums(jnp.asarray(logits), batch, max_z_weight=1e-3)
    want = _reference(logits, batch)
    assert want["weight"] == 9 and want["weight_t2i"] == 3 and want["weight_i2t"] == 3
    assert set(got) == set(want)
    for key, value in want.items():
        np.testing.assert_allclose(float(got[key]), value, rtol=1e-5, err_msg=key)
    assert "z" not in loss_sums(jnp.asarray(logits), batch)  # no max-z weight, no term


def test_objective_and_metrics():
    batch, logits = _batch(), _logits(1)
    want = _reference(logits, batch)
    sums = loss_sums(jnp.asarray(logits), batch, max_z_weight=0.5)
    # A micro-batch's share of the global mean: divided by the whole batch's weight.
    total = float(objective(sums, jnp.float32(12.0), 0.5))
    assert total == pytest.approx((want["nll"] + 0.5 * want["z"]) / 12.0, rel=1e-5)
    assert float(objective(sums, jnp.float32(12.0), 0.0)) == pytest.approx(want["nll"] / 12.0)
    m = metrics_from_sums(sums, 0.5)
    assert float(m["loss"]) == pytest.approx(want["nll"] / 9, rel=1e-5)
    assert float(m["max_z"]) == pytest.approx(want["z"] / 9, rel=1e-5)
    assert float(m["accuracy"]) == pytest.approx(want["correct"] / 9)
    for name in ("text", "t2i", "i2t"):
        expect = want[f"nll_{name}"] / want[f"weight_{name}"]
        assert float(m[f"loss_{name}"]) == pytest.approx(expect, rel=1e-5), name
    assert np.isnan(float(m["loss_vqa"]))  # absent task: NaN, not 0


def test_accuracy_counts_a_tie_for_the_lowest_id_only_as_argmax_does():
    """``models.loss.is_argmax`` (reductions that split along the vocabulary) against
    NumPy's argmax, with ties: at initialisation every new image row is the same mean row,
    so all image codes tie and only the first may count as correct.

    Mutation tried: ``is_argmax`` as ``logits[target] == max`` (every tied id correct)."""
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, 40, V)).astype(np.float32)
    logits[0, :, 6:] = logits[0, :, 6:7]  # ids 6..10 tie everywhere in row 0
    logits[1, :20, 2:9] = 9.0  # a tie at the top for ids 2..8
    targets = rng.integers(0, V, (3, 40)).astype(np.int32)
    targets[1, :20] = rng.integers(2, 9, 20)
    want = np.argmax(logits, -1) == targets
    got = np.asarray(is_argmax(jnp.asarray(logits), jnp.asarray(targets)))
    assert want[1, :20].sum() > 0 and (~want[1, :20]).sum() > 0
    np.testing.assert_array_equal(got, want)
