"""Pure, jitted train and eval steps of the Liquid LLM.

``make_train_step`` returns ``step(state, batch) -> (state, metrics)``: a pure function of
the NNX state, compiled with explicit in/out shardings and the state donated. Gradient
accumulation runs micro-batches through ``lax.scan``; a non-finite loss or gradient
skips the update (``lax.cond``) and is counted in the state. Both steps check the batch's
keys, shapes and dtypes with chex when they are traced (once per compile, free after).
"""

from __future__ import annotations

import dataclasses

import chex
import jax
import jax.numpy as jnp
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from liquid_jax.data.pipeline.packing import BATCH_KEYS
from liquid_jax.parallel.host_batch import batch_sharding
from liquid_jax.parallel.rules import constrain
from liquid_jax.train.loss import chunked_loss_sums, loss_sums, metrics_from_sums, objective
from liquid_jax.train.optimizer import new_rows_only_grad_mask


@dataclasses.dataclass(frozen=True)
class StepConfig:
    """What the train step is compiled for, from the config's ``train`` section.

    The defaults equal ``from_config(base_config().train, ...)`` (``config_utils``; the
    train layer cannot import it, tests/train/test_configs.py ties the two).

    Attributes:
      grad_accum: micro-batches per step (``lax.scan``); divides the per-step batch.
      max_z_weight: weight of the max-z logit penalty (0: off).
      new_rows_only_below: the text vocabulary size when only the embedding / LM-head
        rows above it train (``train.new_rows_only``), else None.
      loss_chunk: > 0: the loss takes the LM head over this many positions of every row
        at a time, under remat (``loss.chunked_loss_sums``), so the [B, T, V] logits are
        never held; 0: the whole logits at once.
    """

    grad_accum: int = 1
    max_z_weight: float = 0.0
    new_rows_only_below: int | None = None
    loss_chunk: int = 0

    @classmethod
    def from_config(cls, train, text_vocab_size: int) -> StepConfig:
        """From the ``train`` section (``grad_accum``, ``max_z_weight``,
        ``new_rows_only``, ``loss_chunk``) and the run's text vocabulary size."""
        return cls(
            grad_accum=int(train.grad_accum),
            max_z_weight=float(train.max_z_weight),
            new_rows_only_below=int(text_vocab_size) if train.new_rows_only else None,
            loss_chunk=int(train.loss_chunk),
        )


def check_batch(batch: dict, grad_accum: int = 1) -> None:
    """Asserts at trace time that ``batch`` is the pipeline's: ``packing.BATCH_KEYS``, each
    ``int32[B, T]`` with the shape of ``tokens``, and B divisible by ``grad_accum``."""
    missing = sorted(set(BATCH_KEYS) - set(batch))
    if missing:
        raise ValueError(f"train batch: missing {missing}; a batch holds {BATCH_KEYS}")
    shape = batch["tokens"].shape
    for key in BATCH_KEYS:
        where = f"train batch[{key!r}] must be int32[B, T] (tokens: {shape})"
        chex.assert_rank(batch[key], 2, custom_message=where)
        chex.assert_type(batch[key], jnp.int32, custom_message=where)
        chex.assert_shape(batch[key], shape, custom_message=where)
    if shape[0] % grad_accum:
        raise ValueError(
            f"train batch: {shape[0]} rows do not split into grad_accum={grad_accum} micro-batches"
        )


def _forward_sums(model, batch, max_z_weight, loss_chunk=0):
    inputs = dict(positions=batch["positions"], segment_ids=batch["segment_ids"])
    if loss_chunk:
        hidden = model.hidden_states(batch["tokens"], **inputs)
        head = model.vocab_parallel_head()
        return chunked_loss_sums(head, hidden, batch, max_z_weight, loss_chunk)
    return loss_sums(model(batch["tokens"], **inputs), batch, max_z_weight)


def micro_batches(x: jax.Array, k: int) -> jax.Array:
    """x: int32[B, T] -> int32[k, B / k, T]; micro-batch i holds rows i, i + k, i + 2k, ...

    Rows lie on the devices in contiguous blocks; every k-th row gives each device a
    slice of every micro-batch (when its block is a multiple of k), so each micro-batch
    runs on all devices and no row moves. Consecutive blocks would put micro-batch i on
    a 1/k share of the devices, to be resharded before each forward.
    """
    x = x.reshape(-1, k, *x.shape[1:]).swapaxes(0, 1)
    return constrain(x, (None, "batch") + (None,) * (x.ndim - 2))


def make_train_step(graphdef, cfg: StepConfig):
    """``step(state, batch) -> (state, metrics)``; batch: ``BATCH_KEYS``, int32[B, T]."""

    def step(state, batch):
        check_batch(batch, cfg.grad_accum)
        ts = nnx.merge(graphdef, state)
        gdef, params, rest = nnx.split(ts.model, nnx.Param, ...)
        total_weight = batch["loss_mask"][:, 1:].sum().astype(jnp.float32)

        def grads_of(micro):
            def f(p):
                model = nnx.merge(gdef, p, rest)
                sums = _forward_sums(model, micro, cfg.max_z_weight, cfg.loss_chunk)
                return objective(sums, total_weight, cfg.max_z_weight), sums

            return jax.grad(f, has_aux=True)(params)

        if cfg.grad_accum == 1:
            grads, sums = grads_of(batch)
        else:
            micro = jax.tree.map(lambda x: micro_batches(x, cfg.grad_accum), batch)
            zero_g = jax.tree.map(jnp.zeros_like, params)
            zero_s = jax.eval_shape(lambda: grads_of(jax.tree.map(lambda x: x[0], micro))[1])
            zero_s = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), zero_s)

            def body(carry, mb):
                g, s = grads_of(mb)
                return jax.tree.map(jnp.add, carry, (g, s)), None

            (grads, sums), _ = jax.lax.scan(body, (zero_g, zero_s), micro)
        if cfg.new_rows_only_below is not None:
            grads = new_rows_only_grad_mask(grads, cfg.new_rows_only_below)

        metrics = metrics_from_sums(sums, cfg.max_z_weight)
        grad_norm = optax.global_norm(grads)
        finite = jnp.isfinite(grad_norm) & jnp.isfinite(metrics["loss"])

        def update(s):
            t = nnx.merge(graphdef, s)
            t.optimizer.update(t.model, grads)
            return nnx.state(t)

        # A skipped step leaves parameters and optimizer moments exactly as they were.
        ts = nnx.merge(graphdef, jax.lax.cond(finite, update, lambda s: s, state))
        ts.nonfinite_in_a_row[...] = jnp.where(finite, 0, ts.nonfinite_in_a_row[...] + 1)
        ts.nonfinite_total[...] = ts.nonfinite_total[...] + (~finite).astype(jnp.int32)
        metrics.update(
            grad_norm=grad_norm,
            skipped=(~finite).astype(jnp.int32),
            nonfinite_in_a_row=ts.nonfinite_in_a_row[...],
        )
        return nnx.state(ts), metrics

    return step


def make_eval_step(graphdef, max_z_weight: float = 0.0, loss_chunk: int = 0):
    """``step(state, batch) -> loss sums`` (``loss.loss_sums``); batch as the train step's,
    ``loss_chunk`` as ``StepConfig``'s."""

    def step(state, batch):
        check_batch(batch)
        ts = nnx.merge(graphdef, state)
        return _forward_sums(ts.model, batch, max_z_weight, loss_chunk)

    return step


def state_shardings_of(state) -> object:
    """The shardings the state already has (it was created sharded)."""
    return jax.tree.map(lambda x: x.sharding, state)


def jit_train_step(graphdef, state, cfg: StepConfig, mesh: Mesh):
    """Compiles the train step: state in/out with its own shardings (donated), the batch
    sharded over the batch axes, metrics replicated."""
    state_sh = state_shardings_of(state)
    batch_sh = batch_sharding(mesh, 2)
    return jax.jit(
        make_train_step(graphdef, cfg),
        in_shardings=(state_sh, batch_sh),
        out_shardings=(state_sh, NamedSharding(mesh, P())),
        donate_argnums=(0,),
    )


def jit_eval_step(graphdef, state, mesh: Mesh, max_z_weight: float = 0.0, loss_chunk: int = 0):
    return jax.jit(
        make_eval_step(graphdef, max_z_weight, loss_chunk),
        in_shardings=(state_shardings_of(state), batch_sharding(mesh, 2)),
        out_shardings=NamedSharding(mesh, P()),
    )
