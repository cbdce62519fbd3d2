"""Pure, jitted train and eval steps of the Liquid LLM.

``make_train_step`` returns ``step(state, batch) -> (state, metrics)``: a pure function of
the NNX state, compiled with explicit in/out shardings and the state donated. Gradient
accumulation runs micro-batches through ``lax.scan``; a non-finite loss or gradient
skips the update (``lax.cond``) and is counted in the state.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from liquid_jax.parallel.host_batch import batch_sharding
from liquid_jax.train.loss import loss_sums, metrics_from_sums, objective
from liquid_jax.train.optimizer import new_rows_only_grad_mask


@dataclasses.dataclass(frozen=True)
class StepConfig:
    grad_accum: int = 1
    max_z_weight: float = 0.0
    new_rows_only_below: int | None = None  # text vocab size: train only rows above it


def _forward_sums(model, batch, max_z_weight):
    logits = model(batch["tokens"], positions=batch["positions"], segment_ids=batch["segment_ids"])
    return loss_sums(logits, batch, max_z_weight)


def make_train_step(graphdef, cfg: StepConfig):
    def step(state, batch):
        ts = nnx.merge(graphdef, state)
        gdef, params, rest = nnx.split(ts.model, nnx.Param, ...)
        total_weight = batch["loss_mask"][:, 1:].sum().astype(jnp.float32)

        def grads_of(micro):
            def f(p):
                sums = _forward_sums(nnx.merge(gdef, p, rest), micro, cfg.max_z_weight)
                return objective(sums, total_weight, cfg.max_z_weight), sums

            return jax.grad(f, has_aux=True)(params)

        if cfg.grad_accum == 1:
            grads, sums = grads_of(batch)
        else:
            micro = jax.tree.map(lambda x: x.reshape(cfg.grad_accum, -1, *x.shape[1:]), batch)
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


def make_eval_step(graphdef, max_z_weight: float = 0.0):
    def step(state, batch):
        ts = nnx.merge(graphdef, state)
        return _forward_sums(ts.model, batch, max_z_weight)

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


def jit_eval_step(graphdef, state, mesh: Mesh, max_z_weight: float = 0.0):
    return jax.jit(
        make_eval_step(graphdef, max_z_weight),
        in_shardings=(state_shardings_of(state), batch_sharding(mesh, 2)),
        out_shardings=NamedSharding(mesh, P()),
    )
