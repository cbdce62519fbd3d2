"""Bytes one T2I decoding step reads, from XLA's compile-time cost analysis, against the
floor: the layers' weights and the code head's rows in bf16 plus the live KV cache.

    python benchmarks/sampling.py --analysis     # liquid_v1_7b, nothing allocated

The step is ``Transformer.decode_step`` as the compiled loop runs it: the weights taken
apart and cast once, the code columns of the head taken outside the loop
(``Transformer.decode_weights``, so they are inputs here), the
cache donated (written in place), bf16 weights, 4 images with CFG (8 rows) of 1024 codes
after a 24-token prompt, the cache half full (the average over the image). A decoding
step produces one code per image, so "per token" is per step.

The headline figure is XLA's cost analysis of the program as written (before backend
passes), which no backend's emulation inflates: compiled for a CPU, every bf16 weight
matrix is converted to float32 before its matmul (4x the weight traffic, an artefact of
the CPU). Fusion on an accelerator
usually lowers the written figure.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from accelerator import decode_floor_bytes  # noqa: E402
from flax import nnx  # noqa: E402

from liquid_jax.models import Transformer, get_preset  # noqa: E402

CODES = 8192


def step_bytes(preset: str = "liquid_v1_7b", images: int = 4, prompt: int = 24,
               codes: int = 1024) -> tuple[float, float, float]:  # fmt: skip
    """Bytes one decoding step accesses, nothing allocated: (in the program as written,
    as compiled for this backend, the floor)."""
    spec = get_preset(preset).replace(dtype="bfloat16", param_dtype="bfloat16")
    rows, length = 2 * images, prompt + codes
    lo = spec.vocab_size - CODES
    model = nnx.eval_shape(lambda: Transformer(spec, rngs=nnx.Rngs(0)))
    graphdef, state = nnx.split(model)
    weights = jax.eval_shape(
        lambda state: nnx.merge(graphdef, state).decode_weights((lo, spec.vocab_size)), state
    )
    cache = jax.eval_shape(lambda: model.init_cache(rows, length, jnp.bfloat16))
    token = jax.ShapeDtypeStruct((rows,), jnp.int32)

    def step(state, weights, tokens, positions, cache):
        model = nnx.merge(graphdef, state)
        return model.decode_step(tokens, positions, cache, weights)

    lowered = jax.jit(step, donate_argnums=(4,)).lower(state, weights, token, token, cache)
    floor = decode_floor_bytes(spec, CODES, rows, prompt + codes // 2)
    return _bytes(lowered.cost_analysis()), _bytes(lowered.compile().cost_analysis()), floor


def _bytes(cost) -> float:
    return float((cost[0] if isinstance(cost, list) else cost)["bytes accessed"])


def main(preset: str = "liquid_v1_7b") -> None:
    written, compiled, floor = step_bytes(preset)
    print(f"{preset} decode: {written / 1e9:.2f} GB/token, floor {floor / 1e9:.2f} GB/token, "
          f"ratio {written / floor:.2f}")  # fmt: skip
    print(
        f"  (compiled for {jax.devices()[0].platform}: {compiled / 1e9:.2f} GB/token; a CPU "
        "converts every bf16 weight to float32 before its matmuls, an accelerator does not)"
    )


if __name__ == "__main__":
    main()
