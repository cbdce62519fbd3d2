"""``flops.recompute_flops_per_token`` against XLA's own count of the compiled backward.

On a one-layer model (XLA counts a scanned layer once) the FLOPs a remat policy adds are
the compiled gradient's FLOPs minus those of the same gradient without remat; the
formula counts the matmuls and attention only, so it may exceed the measurement by the
elementwise work it leaves out, a few percent here; under a named policy the attention
tiles' online softmax adds some of its own (measured up to 0.7% over the formula).

Mutation tried: counting the MLP's down projection as recomputed in a pre-norm layer
(Qwen2), whose output no backward reads (fails at a ratio of 0.74).
"""

import functools
import math

import jax
import jax.numpy as jnp
import pytest
from flax import nnx

from liquid_jax.models import Transformer
from liquid_jax.train.flops import recompute_flops_per_token
from tests.tiny import tiny_spec

T = 128


def _compiled_flops(spec) -> float:
    graphdef, state = nnx.split(Transformer(spec, rngs=nnx.Rngs(0)))
    tokens = jnp.zeros((2, T), jnp.int32)

    def loss(state):
        return jnp.mean(nnx.merge(graphdef, state)(tokens)[..., :10])

    cost = jax.jit(jax.grad(loss)).lower(state).compile().cost_analysis()
    return (cost[0] if isinstance(cost, list) else cost)["flops"]


@pytest.mark.parametrize(
    "family, policies", [("qwen2", ["full"]), ("gemma2", ["full", "save_qkv_proj"])]
)
def test_recomputed_flops_match_the_compiled_backward(family, policies, monkeypatch):
    # XLA counts a loop's body once: attention's tiles loop over their keys, unrolled here.
    fori_loop = jax.lax.fori_loop
    monkeypatch.setattr(jax.lax, "fori_loop", functools.partial(fori_loop, unroll=True))
    spec = tiny_spec(family, num_layers=1, hidden_size=256, intermediate_size=1024,
                     num_heads=4, num_kv_heads=2, head_dim=64, vocab_size=256,
                     attn_causal_chunk=32)  # fmt: skip
    assert recompute_flops_per_token(spec, T) == 0.0  # remat "none"
    without = _compiled_flops(spec)
    for policy in policies:
        with_remat = spec.replace(remat=policy)
        measured = (_compiled_flops(with_remat) - without) / (2 * T)
        ratio = measured / recompute_flops_per_token(with_remat, T)
        assert 0.9 < ratio < 1.03, (policy, ratio)


def _jaxpr_matmul_flops(jaxpr, times: int = 1) -> int:
    """The matmul FLOPs of a jaxpr, each loop's body times its trip count."""
    total = 0
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "dot_general":
            (contract, _), _ = eqn.params["dimension_numbers"]
            lhs = eqn.invars[0].aval.shape
            depth = math.prod(lhs[i] for i in contract)
            total += times * 2 * math.prod(eqn.outvars[0].aval.shape) * depth
            continue
        inner = times * eqn.params["length"] if eqn.primitive.name == "scan" else times
        assert eqn.primitive.name != "while", "a loop without a static trip count"
        for param in eqn.params.values():
            for sub in param if isinstance(param, tuple | list) else (param,):
                sub = getattr(sub, "jaxpr", sub)  # a ClosedJaxpr's own
                if isinstance(sub, jax.extend.core.Jaxpr):
                    total += _jaxpr_matmul_flops(sub, inner)
    return total


@pytest.mark.parametrize("family", ["qwen2", "gemma2"])
def test_recomputed_matmuls_are_the_formula_exactly(family):
    """At an attention-heavy shape (T = 256 in 8 query blocks, hidden 64), where XLA's
    count mixes in its own elementwise work: the matmuls of the traced program, loops
    times their trip counts and dead code removed as XLA removes it, differ between
    ``full`` and no remat by exactly the formula."""
    from jax._src.interpreters.partial_eval import dce_jaxpr

    t = 256
    spec = tiny_spec(family, num_layers=1, hidden_size=64, intermediate_size=128,
                     num_heads=4, num_kv_heads=2, head_dim=64, vocab_size=256,
                     attn_causal_chunk=32)  # fmt: skip

    def matmuls(spec):
        graphdef, state = nnx.split(Transformer(spec, rngs=nnx.Rngs(0)))
        tokens = jnp.zeros((2, t), jnp.int32)
        grad = jax.grad(lambda s: jnp.mean(nnx.merge(graphdef, s)(tokens)[..., :10]))
        closed = jax.make_jaxpr(grad)(state)
        live, _ = dce_jaxpr(closed.jaxpr, [True] * len(closed.jaxpr.outvars))
        return _jaxpr_matmul_flops(live)

    full = spec.replace(remat="full")
    measured = (matmuls(full) - matmuls(spec)) / (2 * t)
    assert measured == recompute_flops_per_token(full, t)
