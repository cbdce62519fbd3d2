"""Bytes the T2I decode loop reads per token, from XLA's compile-time cost analysis,
against the floor: the layers' weights and the code head's rows plus the live KV cache.

    python benchmarks/sampling.py --analysis                  # liquid_v1_7b, bf16
    python benchmarks/sampling.py --analysis --quantize int8  # weight-only int8

Nothing is allocated: the model, its weights and the cache are abstract. The programs
are the ones ``Decoder.generate`` runs for 4 images with CFG (8 rows) of 1024 codes
after a 24-token prompt, bf16 weights (int8 with ``--quantize int8``, scales float32):

- per phase of the loop (``sample/phases.py``: 4 phases of about 256 steps), one
  ``DecodeModel.decode_step`` over that phase's cache (prompt + the phase's last step),
  the cache donated (written in place), the weights the sampler's one copy
  (``DecodeModel``: layers apart, cast or quantized at load, the vocabulary in a text
  and an image-code block, the latter read in place);
- between phases, the cache grown (``KVCache.grow``).

GB/token is their sum over one image (each phase's step times its steps) divided by the
image's decoding steps (1023: the first code comes from the prefill, not counted). A
step draws one code per image, so "per token" is per step. The floor counts, per step,
the bytes of the decode weights as stored (layers and the code head's 8192 columns) and
the KV cache filled half-way through the image (prompt + 512 slots).

The headline figure is XLA's cost analysis of the programs as written (before backend
passes), which no backend's emulation inflates: compiled for a CPU, every bf16 weight
matrix is converted to float32 before its matmul (4x the weight traffic, an artefact of
the CPU). Fusion on an accelerator usually lowers the written figure.

Weight memory per device: ``compile().memory_analysis()`` of the two programs
``Decoder.generate`` runs (the prefill and the last phase's loop), whose arguments hold
the weights, and a scan of their compiled HLO for arrays of a weight's size that they
make (``weight_copies``: copies in the weight's own dtype, and converts).
"""

from __future__ import annotations

import functools
import math
import os
import re
import sys
from collections import defaultdict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from flax import nnx  # noqa: E402

from liquid_jax.models import DecodeModel, Transformer, get_preset  # noqa: E402
from liquid_jax.sample import decode_loop  # noqa: E402
from liquid_jax.sample.decode_spec import DecodeSpec, SamplingParams  # noqa: E402
from liquid_jax.sample.phases import plan_phases  # noqa: E402
from liquid_jax.sample.quantize import quantize_piece, weight_bytes  # noqa: E402

CODES = 8192
GIB = 2**30
_BYTES = {"s8": 1, "bf16": 2, "f16": 2, "f32": 4}
_HLO_DTYPE = {"int8": "s8", "bfloat16": "bf16", "float16": "f16", "float32": "f32"}
# One HLO instruction: name = dtype[shape]{layout} op(operands), ...
# An instruction of a compiled program (HLO text after backend passes).
_COMPILED = re.compile(r"^\s*(?:ROOT\s+)?%?[\w.\-]+ = (\w+)\[([\d,]*)\]\S*\s+([\w\-]+)\(")
_COMPUTATION = re.compile(r"^(?:ENTRY\s+)?%?([\w.\-]+)\s.*\{\s*$")
# Instructions that name an array without making one.
_NO_COPY = {"parameter", "get-tuple-element", "tuple", "bitcast", "while", "call",
            "conditional"}  # fmt: skip
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


def _abstract_decode_model(preset: str, quantize: str | None):
    """The sampler's one copy of the weights (``DecodeModel``, bf16 or int8), abstract: the
    vocabulary in a text block and an image-code block, as ``Sampler`` splits it."""
    spec = get_preset(preset).replace(dtype="bfloat16", param_dtype="bfloat16")

    def make():
        model = Transformer(spec, rngs=nnx.Rngs(0))
        hook = quantize_piece if quantize else None
        return DecodeModel.from_transformer(model, (spec.vocab_size - CODES,), quantize=hook)

    return spec, nnx.eval_shape(make)


def _read_per_step(spec, state, columns) -> int:
    """Weight bytes a decode step reads: every layer, the final norm, the head's blocks
    inside ``columns`` (the embedding lookup reads only the fed rows)."""
    lo, hi = columns
    edges = (0, spec.vocab_size - CODES, spec.vocab_size)
    heads = state["embed"] if "head" not in state else state["head"]
    blocks = [
        heads[i] for i, (a, b) in enumerate(zip(edges[:-1], edges[1:])) if a >= lo and b <= hi
    ]
    return weight_bytes(state["layers"]) + weight_bytes(state["norm"]) + weight_bytes(blocks)


def _loop_programs(graphdef, spec, state, rows: int, prompt: int, codes: int, phases: int):
    """``Decoder.generate``'s prefill and last phase's loop for ``rows // 2`` images with
    CFG (Liquid's T2I settings), lowered on abstract inputs."""
    lo = spec.vocab_size - CODES
    dspec = DecodeSpec(codes, (lo, spec.vocab_size), greedy=False, top_k=4096, nucleus=True,
                       cfg=True, phases=phases)  # fmt: skip
    params = SamplingParams.of(0.99, 0.96, 7.0)
    plan = plan_phases(prompt, codes, phases)
    tokens = jax.ShapeDtypeStruct((rows, prompt), jnp.int32)
    row = jax.ShapeDtypeStruct((rows,), jnp.int32)
    samples = jax.ShapeDtypeStruct((rows // 2,), jnp.int32)
    seed = jax.ShapeDtypeStruct((), jnp.uint32)
    inputs = (tokens, tokens, tokens, row, samples, seed, params)
    start = functools.partial(decode_loop._start, graphdef, dspec, plan[0].cache_len)
    ds = jax.eval_shape(start, state, *inputs)
    ds = ds.replace(cache=jax.eval_shape(lambda c: c.grow(plan[-1].cache_len), ds.cache))
    advance = functools.partial(decode_loop._advance, graphdef, dspec)
    stop = jax.ShapeDtypeStruct((), jnp.int32)
    return {
        "prefill": jax.jit(start).lower(state, *inputs),
        "loop": jax.jit(advance, donate_argnums=(1,)).lower(state, ds, params, stop),
    }


def weight_copies(hlo_text: str, weights: dict[int, set[str]]) -> dict[str, float]:
    """Bytes of the arrays a compiled program makes with a weight's element count
    (``weights``: element count -> the HLO dtypes weights of that count are held in):
    ``"copied"``, in the weight's own dtype (a slice, copy or transpose of a weight), and
    ``"converted"``, in another (the converts before the matmuls: a CPU keeps them as
    arrays, an accelerator's matmul reads the weight and converts as it goes). Each
    instruction counts once, whether or not buffers are reused (an upper bound)."""
    out, fused = {"copied": 0.0, "converted": 0.0}, False
    for line in hlo_text.splitlines():
        header = _COMPUTATION.match(line)
        if header:  # a fusion's body computes inside its fusion's output: no buffers
            fused = "fus" in header.group(1)
            continue
        m = _COMPILED.match(line)
        if fused or not m or m.group(3) in _NO_COPY:
            continue
        dtype, shape = m.group(1), m.group(2)
        n = math.prod(int(d) for d in shape.split(",") if d)
        if n in weights and dtype in _BYTES:
            kind = "copied" if dtype in weights[n] else "converted"
            out[kind] += n * _BYTES[dtype]
    return out


def _peak(memory) -> int:
    """Bytes a compiled program holds at once: arguments, temporaries and the outputs
    not written in place of a donated argument."""
    m = memory
    return (m.argument_size_in_bytes + m.temp_size_in_bytes + m.output_size_in_bytes
            - m.alias_size_in_bytes)  # fmt: skip


def decode_bytes(preset: str = "liquid_v1_7b", images: int = 4, prompt: int = 24,
                 codes: int = 1024, quantize: str | None = None, phases: int = 0,
                 compiled: bool = True, memory: bool = True) -> dict:  # fmt: skip
    """Bytes the loop reads per token, nothing allocated (see the module docstring)."""
    spec, model = _abstract_decode_model(preset, quantize)
    rows = 2 * images
    graphdef, state = nnx.split(model)
    columns = (spec.vocab_size - CODES, spec.vocab_size)
    token = jax.ShapeDtypeStruct((rows,), jnp.int32)

    def step(state, tokens, positions, cache):
        return nnx.merge(graphdef, state).decode_step(tokens, positions, cache, columns)

    step_jit = jax.jit(step, donate_argnums=(3,))
    total, unfused, grows, per_phase, previous, lowered = 0.0, 0.0, 0.0, [], None, None
    plan = plan_phases(prompt, codes, phases)
    for phase in plan:
        cache = jax.eval_shape(lambda n=phase.cache_len: model.init_cache(rows, n, jnp.bfloat16))
        grow = 0.0
        if previous is not None:
            grow_jit = jax.jit(lambda c, n=phase.cache_len: c.grow(n))
            grow = _bytes(grow_jit.lower(previous).cost_analysis())
        lowered = step_jit.lower(state, token, token, cache)
        written = _bytes(lowered.cost_analysis())
        one = written - fused_convert_bytes(lowered.as_text(dialect="hlo"))
        per_phase.append((phase, one, written))
        grows += grow
        total += phase.steps * one + grow
        unfused += phase.steps * written + grow
        previous = cache
    steps = codes - 1
    kv_slot = 2 * spec.num_layers * spec.num_kv_heads * spec.head_dim * rows * 2  # bf16
    floor = _read_per_step(spec, state, columns) + kv_slot * (prompt + codes // 2)
    out = dict(written=total / steps, unfused=unfused / steps, floor=floor,
               phases=per_phase, steps=steps, once=grows / steps,
               state_bytes=weight_bytes(state))  # fmt: skip
    if memory:  # the programs Decoder.generate runs, compiled for this backend
        programs = _loop_programs(graphdef, spec, state, rows, prompt, codes, phases)
        sizes = defaultdict(set)
        for x in jax.tree.leaves(state):
            if x.size >= 2**20:
                sizes[x.size].add(_HLO_DTYPE[jnp.dtype(x.dtype).name])
        out["memory"] = {}
        for name, lowered_program in programs.items():
            program = lowered_program.compile()
            copies = weight_copies(program.as_text(), sizes)
            out["memory"][name] = (program.memory_analysis(), copies)
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
    print(f"  of which once per phase (cache growth): "
          f"{r['once'] / 1e9:.2f} GB/token")  # fmt: skip
    if r["unfused"] != r["written"]:
        print(f"  (as written, with the int8 -> bf16 converts before the matmuls unfused: "
              f"{r['unfused'] / 1e9:.2f} GB/token)")  # fmt: skip
    held = r["state_bytes"]
    print(f"  weights per device: {held / GIB:.2f} GiB held, one copy (DecodeModel: the "
          f"layers apart, the vocabulary in blocks; cast{' and quantized' if quantize else ''} "
          "at load)")  # fmt: skip
    platform = jax.devices()[0].platform
    for name, (m, copies) in r.get("memory", {}).items():
        rest = m.argument_size_in_bytes - held
        print(f"  {name} (memory_analysis, {platform}): weights {held / GIB:.2f} GiB held "
              f"(arguments) + {copies['copied'] / GIB:.2f} copied by the program; other "
              f"arguments (cache, prompts) {rest / GIB:.2f}, temporaries "
              f"{m.temp_size_in_bytes / GIB:.2f} (converts of weights before matmuls: up to "
              f"{copies['converted'] / GIB:.2f}), peak {_peak(m) / GIB:.2f} GiB")  # fmt: skip
    if "compiled_last" in r:
        print(f"  (compiled for {jax.devices()[0].platform}, the last phase's step: "
              f"{r['compiled_last'] / 1e9:.2f} GB; a CPU converts every bf16 weight to "
              "float32 before its matmuls, an accelerator does not)")  # fmt: skip


if __name__ == "__main__":
    main()
