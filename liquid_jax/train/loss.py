"""Next-token loss over packed Liquid batches, per task, with the max-z logit penalty.

Targets are ``tokens[:, 1:]`` predicted from ``logits[:, :-1]`` and weighted by
``loss_mask[:, 1:]`` (the data pipeline marks each target token; a segment's first token
is never a target, so nothing is predicted across packed segments). ``chunked_loss_sums``
gives the same sums from the final hidden states without the [B, T, V] logits: the
vocabulary is taken a chunk of positions at a time, under remat.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from liquid_jax.data.formats import TASK_I2T, TASK_T2I, TASK_TEXT, TASK_VQA
from liquid_jax.models.loss import is_argmax, token_nll

TASKS = {"text": TASK_TEXT, "t2i": TASK_T2I, "i2t": TASK_I2T, "vqa": TASK_VQA}


def loss_sums(logits: jax.Array, batch: dict, max_z_weight: float = 0.0) -> dict:
    """Sums (not means) so micro-batches and devices can be added before dividing.

    logits: float32[B, T, V]; batch: tokens, loss_mask, task int32[B, T].
    Returns scalars: ``nll`` (sum of weighted token losses), ``z`` (sum of weighted
    squared max logits), ``weight`` (number of target tokens), ``correct``, and per task
    ``nll_<task>`` / ``weight_<task>``.
    """
    stats = _token_stats(logits[:, :-1], batch["tokens"][:, 1:], max_z_weight)
    return _sums(*stats, batch, max_z_weight)


def chunked_loss_sums(
    head: Callable[[jax.Array], jax.Array],
    hidden: jax.Array,
    batch: dict,
    max_z_weight: float = 0.0,
    chunk: int = 512,
) -> dict:
    """``loss_sums(head(hidden), batch, max_z_weight)`` without the [B, T, V] logits.

    head: normed hidden states [B, C, D] -> float32 logits [B, C, V] (``Transformer.head``);
    hidden: [B, T, D] (``Transformer.hidden_states``); chunk: positions of every row per
    chunk (the last chunk is padded when it does not divide T). Position t is scored
    against ``tokens[:, t + 1]`` (the targets shift left, the last position has none), a
    chunk at a time under ``jax.checkpoint`` in a ``lax.scan``: forward and backward hold
    one chunk's logits, [B, chunk, V], never all of them. The per-token values are summed
    exactly as ``loss_sums`` sums them.
    """
    b, t, d = hidden.shape
    chunk = max(1, min(chunk, t))
    n = -(-t // chunk)
    pad = n * chunk - t
    # Position t predicts tokens[t + 1]; the last position (and the padding) predicts 0.
    targets = jnp.pad(batch["tokens"][:, 1:], ((0, 0), (0, pad + 1)))
    hidden = jnp.pad(hidden, ((0, 0), (0, pad), (0, 0)))
    xs = (
        hidden.reshape(b, n, chunk, d).swapaxes(0, 1),
        targets.reshape(b, n, chunk).swapaxes(0, 1),
    )

    @jax.checkpoint  # the backward recomputes a chunk's logits instead of keeping them
    def stats(h_bcd, targets_bc):
        return _token_stats(head(h_bcd), targets_bc, max_z_weight)

    _, out = jax.lax.scan(lambda carry, x: (carry, stats(*x)), None, xs)
    out = jax.tree.map(lambda x: x.swapaxes(0, 1).reshape(b, n * chunk)[:, : t - 1], out)
    return _sums(*out, batch, max_z_weight)


def _token_stats(logits, targets, max_z_weight: float):
    """Per position: the token loss, whether the argmax is the target, and the max logit
    (None without max-z). logits: float[B, T, V]; targets: int32[B, T]."""
    logits = logits.astype(jnp.float32)
    nll = token_nll(logits, targets)
    correct = is_argmax(logits, targets)
    z = jnp.max(logits, axis=-1) if max_z_weight else None
    return nll, correct, z


def _sums(nll, correct, z, batch: dict, max_z_weight: float) -> dict:
    """``loss_sums``'s dict from per-target values [B, T - 1] (target t + 1 at t)."""
    weight = batch["loss_mask"][:, 1:].astype(jnp.float32)
    task = batch["task"][:, 1:]
    nll = nll * weight
    out = {"nll": nll.sum(), "weight": weight.sum(), "correct": (correct * weight).sum()}
    if max_z_weight:
        # Baichuan-2's max-z loss, which Liquid uses against loss spikes at 7B+.
        out["z"] = (z**2 * weight).sum()
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
