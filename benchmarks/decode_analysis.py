"""Bytes the T2I decode loop reads per token, from XLA's compile-time cost analysis,
against the floor: the layers' weights and the code head's rows plus the live KV cache.

    python benchmarks/sampling.py --analysis                  # liquid_v1_7b, bf16
    python benchmarks/sampling.py --analysis --quantize int8  # weight-only int8

Nothing is allocated: the model, its weights and the cache are abstract. The programs
are the ones ``Decoder.generate`` runs for 4 images with CFG (8 rows) of 1024 codes
after a 24-token prompt, bf16 weights (int8 with ``--quantize int8``, scales float32):

- per phase of the loop (``sample/phases.py``: 4 phases of about 256 steps), one
  ``Transformer.decode_step`` over that phase's cache (prompt + the phase's last step),
  the cache donated (written in place), the weights taken apart and cast outside the
  step (``Transformer.decode_weights``, so they are inputs here);
- once per image, ``decode_weights`` itself (``Decoder.generate`` takes the stacked
  layers apart once for all phases) and, between phases, the cache grown
  (``KVCache.grow``).

GB/token is their sum over one image (each phase's step times its steps) divided by the
image's decoding steps (1023: the first code comes from the prefill, not counted). A
step draws one code per image, so "per token" is per step. The floor counts, per step,
the bytes of the decode weights as stored (layers and the code head's 8192 columns) and
the KV cache filled half-way through the image (prompt + 512 slots).

The headline figure is XLA's cost analysis of the programs as written (before backend
passes), which no backend's emulation inflates: compiled for a CPU, every bf16 weight
matrix is converted to float32 before its matmul (4x the weight traffic, an artefact of
the CPU). Fusion on an accelerator usually lowers the written figure.

Weight memory per device: ``compile().memory_analysis()`` of ``decode_weights``
(arguments: the model's parameters as stored; outputs: the per-layer copies the loop
reads, alive while it runs).
"""

from __future__ import annotations

import math
import os
import re
import sys
from collections import defaultdict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from flax import nnx  # noqa: E402

from liquid_jax.models import Transformer, get_preset  # noqa: E402
from liquid_jax.sample.phases import plan_phases  # noqa: E402
from liquid_jax.sample.quantize import quantize_weights, weight_bytes  # noqa: E402

CODES = 8192
GIB = 2**30
_BYTES = {"s8": 1, "bf16": 2, "f16": 2, "f32": 4}
# One HLO instruction: name = dtype[shape]{layout} op(operands), ...
_INSTRUCTION = re.compile(
    r"^\s*(?:ROOT\s+)?([\w.\-]+) = (\w+)\[([\d,]*)\]\S*\s+([\w\-]+)\(([^)]*)\)"
)


def fused_convert_bytes(hlo_text: str) -> float:
    """What the cost analysis of a program as written charges for int8 weights converted
    before their matmuls, beyond reading the int8 values once: each ``convert`` of an int8
    array whose only users are dots reads n bytes and writes n x b, and the dot reads the
    n x b again (b: the converted dtype's size); an accelerator fuses the convert into the
    dot, which then reads the n bytes of int8 alone. Returns 2 n b summed over them."""
    defs, users = {}, defaultdict(list)
    for line in hlo_text.splitlines():
        m = _INSTRUCTION.match(line)
        if m:
            name, dtype, shape, op, operands = m.groups()
            operands = [a.strip() for a in operands.split(",") if a.strip()]
            defs[name] = (dtype, shape, op, operands)
            for a in operands:
                users[a].append(op)
    total = 0.0
    for name, (dtype, shape, op, operands) in defs.items():
        source = defs.get(operands[0]) if op == "convert" and len(operands) == 1 else None
        if source and source[0] == "s8" and users[name] and set(users[name]) == {"dot"}:
            n = math.prod(int(d) for d in shape.split(",") if d)
            total += 2 * n * _BYTES[dtype]
    return total


def _abstract_model(preset: str, quantize: str | None):
    spec = get_preset(preset).replace(dtype="bfloat16", param_dtype="bfloat16")

    def make():
        model = Transformer(spec, rngs=nnx.Rngs(0))
        return quantize_weights(model, quantize) if quantize else model

    return spec, nnx.eval_shape(make)


def decode_bytes(preset: str = "liquid_v1_7b", images: int = 4, prompt: int = 24,
                 codes: int = 1024, quantize: str | None = None, phases: int = 0,
                 compiled: bool = True) -> dict:  # fmt: skip
    """Bytes the loop reads per token, nothing allocated (see the module docstring)."""
    spec, model = _abstract_model(preset, quantize)
    rows = 2 * images
    graphdef, state = nnx.split(model)
    columns = (spec.vocab_size - CODES, spec.vocab_size)
    prepare = jax.jit(lambda state: nnx.merge(graphdef, state).decode_weights(columns))
    prepare_lowered = prepare.lower(state)
    weights = jax.eval_shape(prepare, state)
    token = jax.ShapeDtypeStruct((rows,), jnp.int32)

    def step(state, weights, tokens, positions, cache):
        model = nnx.merge(graphdef, state)
        return model.decode_step(tokens, positions, cache, weights)

    step_jit = jax.jit(step, donate_argnums=(4,))
    prepare_bytes = _bytes(prepare_lowered.cost_analysis())
    # decode_weights once per image (Decoder.generate), then the phases.
    total, unfused, grows, per_phase, previous, lowered = (
        prepare_bytes,
        prepare_bytes,
        0.0,
        [],
        None,
        None,
    )
    plan = plan_phases(prompt, codes, phases)
    for phase in plan:
        cache = jax.eval_shape(lambda n=phase.cache_len: model.init_cache(rows, n, jnp.bfloat16))
        grow = 0.0
        if previous is not None:
            grow_jit = jax.jit(lambda c, n=phase.cache_len: c.grow(n))
            grow = _bytes(grow_jit.lower(previous).cost_analysis())
        lowered = step_jit.lower(state, weights, token, token, cache)
        written = _bytes(lowered.cost_analysis())
        one = written - fused_convert_bytes(lowered.as_text(dialect="hlo"))
        per_phase.append((phase, one, written))
        grows += grow
        total += phase.steps * one + grow
        unfused += phase.steps * written + grow
        previous = cache
    steps = codes - 1
    kv_slot = 2 * spec.num_layers * spec.num_kv_heads * spec.head_dim * rows * 2  # bf16
    floor = weight_bytes(weights) + kv_slot * (prompt + codes // 2)
    memory = prepare_lowered.compile().memory_analysis()
    out = dict(written=total / steps, unfused=unfused / steps, floor=floor,
               phases=per_phase, steps=steps, once=(prepare_bytes + grows) / steps,
               state_bytes=weight_bytes(state), memory=memory)  # fmt: skip
    if compiled:  # the last phase's step as this backend compiles it
        out["compiled_last"] = _bytes(lowered.compile().cost_analysis())
    return out


def _bytes(cost) -> float:
    return float((cost[0] if isinstance(cost, list) else cost)["bytes accessed"])


def main(preset: str = "liquid_v1_7b", quantize: str | None = None) -> None:
    r = decode_bytes(preset, quantize=quantize)
    name = f"{preset} decode" + (f" ({quantize})" if quantize else "")
    print(f"{name}: {r['written'] / 1e9:.2f} GB/token, floor {r['floor'] / 1e9:.2f} GB/token, "
          f"ratio {r['written'] / r['floor']:.2f}")  # fmt: skip
    for phase, one, _ in r["phases"]:
        print(f"  steps {phase.first}-{phase.end - 1} over {phase.cache_len} cache slots: "
              f"{one / 1e9:.2f} GB/step")  # fmt: skip
    print(f"  of which once per image (decode_weights) or phase (cache growth): "
          f"{r['once'] / 1e9:.2f} GB/token")  # fmt: skip
    if r["unfused"] != r["written"]:
        print(f"  (as written, with the int8 -> bf16 converts before the matmuls unfused: "
              f"{r['unfused'] / 1e9:.2f} GB/token)")  # fmt: skip
    m = r["memory"]
    print(f"  weights per device: {m.argument_size_in_bytes / GIB:.2f} GiB as stored "
          f"(memory_analysis arguments; arrays {r['state_bytes'] / GIB:.2f} GiB), "
          f"{m.output_size_in_bytes / GIB:.2f} GiB of per-layer copies while decoding")  # fmt: skip
    if "compiled_last" in r:
        print(f"  (compiled for {jax.devices()[0].platform}, the last phase's step: "
              f"{r['compiled_last'] / 1e9:.2f} GB; a CPU converts every bf16 weight to "
              "float32 before its matmuls, an accelerator does not)")  # fmt: skip


if __name__ == "__main__":
    main()
