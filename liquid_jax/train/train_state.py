"""The LLM training state: model, optimizer, NaN-guard counters; created sharded."""

from __future__ import annotations

import jax.numpy as jnp
import optax
from flax import nnx

from liquid_jax.parallel import create_sharded


class GuardCount(nnx.Variable):
    """Non-finite step counters (not trained, checkpointed)."""


class TrainState(nnx.Module):
    """Everything a training run changes, and so everything a checkpoint holds."""

    def __init__(self, model: nnx.Module, tx: optax.GradientTransformation):
        self.model = model
        self.optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
        self.nonfinite_in_a_row = GuardCount(jnp.zeros((), jnp.int32))
        self.nonfinite_total = GuardCount(jnp.zeros((), jnp.int32))


def create_train_state(model_factory, tx_factory, mesh, rules=None) -> TrainState:
    """Builds the state directly in its shards: ``eval_shape`` for the structure,
    logical axis rules for the placement, one jitted init (nothing is materialised on
    a single device first). ``tx_factory(params)`` may use the parameters' structure
    (e.g. for freezing masks)."""

    def factory():
        model = model_factory()
        return TrainState(model, tx_factory(nnx.state(model, nnx.Param)))

    return create_sharded(factory, mesh, rules)
