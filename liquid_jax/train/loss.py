"""Next-token loss over packed Liquid batches, per task, with the max-z logit penalty.

Targets are ``tokens[:, 1:]`` predicted from ``logits[:, :-1]`` and weighted by
``loss_mask[:, 1:]`` (the data pipeline marks each target token; a segment's first token
is never a target, so nothing is predicted across packed segments).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from liquid_jax.data.formats import TASK_I2T, TASK_T2I, TASK_TEXT, TASK_VQA
from liquid_jax.models.loss import token_nll

TASKS = {"text": TASK_TEXT, "t2i": TASK_T2I, "i2t": TASK_I2T, "vqa": TASK_VQA}


def loss_sums(logits: jax.Array, batch: dict, max_z_weight: float = 0.0) -> dict:
    """Sums (not means) so micro-batches and devices can be added before dividing.

    logits: float32[B, T, V]; batch: tokens, loss_mask, task int32[B, T].
    Returns scalars: ``nll`` (sum of weighted token losses), ``z`` (sum of weighted
    squared max logits), ``weight`` (number of target tokens), ``correct``, and per task
    ``nll_<task>`` / ``weight_<task>``.
    """
    targets = batch["tokens"][:, 1:]
    weight = batch["loss_mask"][:, 1:].astype(jnp.float32)
    task = batch["task"][:, 1:]
    logits = logits[:, :-1].astype(jnp.float32)
    nll = token_nll(logits, targets) * weight
    correct = (jnp.argmax(logits, axis=-1) == targets) * weight
    out = {"nll": nll.sum(), "weight": weight.sum(), "correct": correct.sum()}
    if max_z_weight:
        # Baichuan-2's max-z loss, which Liquid uses against loss spikes at 7B+.
        out["z"] = (jnp.max(logits, axis=-1) ** 2 * weight).sum()
    for name, k in TASKS.items():
        on = (task == k).astype(jnp.float32)
        out[f"nll_{name}"] = (nll * on).sum()
        out[f"weight_{name}"] = (weight * on).sum()
    return out


def objective(sums: dict, total_weight: jax.Array, max_z_weight: float) -> jax.Array:
    """The quantity whose gradient is taken: mean token loss (+ max-z penalty) over the
    whole global batch, written as this micro-batch's share."""
    total = sums["nll"]
    if max_z_weight:
        total = total + max_z_weight * sums["z"]
    return total / jnp.maximum(total_weight, 1.0)


def metrics_from_sums(sums: dict, max_z_weight: float) -> dict:
    """Means for logging: loss, accuracy, per-task losses (NaN where a task is absent)."""
    w = jnp.maximum(sums["weight"], 1.0)
    out = {
        "loss": sums["nll"] / w,
        "accuracy": sums["correct"] / w,
        "target_tokens": sums["weight"],
    }
    if max_z_weight:
        out["max_z"] = sums["z"] / w
    for name in TASKS:
        tw = sums[f"weight_{name}"]
        out[f"loss_{name}"] = jnp.where(tw > 0, sums[f"nll_{name}"] / jnp.maximum(tw, 1.0), jnp.nan)
    return out
