"""MFU of a training step and T2I latency against the memory-bandwidth floor, on whatever
accelerator JAX sees (TPU, GPU; CPU only with ``--tiny``).

    python benchmarks/accelerator.py          # gemma_2b train step; liquid_v1_7b T2I
    python benchmarks/accelerator.py --tiny   # tiny shapes, seconds on a CPU (the suite)

Train: the ``gemma_2b`` shape with Liquid's vocabulary (+8192 codes), bf16 compute with
float32 master weights and Adam moments, full remat (the recipe's settings), 2 x 2048
tokens per device on an fsdp mesh over every device; MFU from ``train/flops.py``'s
FLOPs per token and the device's data-sheet peak.

T2I: 4 images of 32 x 32 = 1024 codes with CFG (8 rows: conditional + unconditional) at
the ``liquid_v1_7b`` shape with random bf16 weights on one device, prefill included.
The floor is what decoding cannot beat: every step reads the layers' weights, the code
head's rows and the live KV cache once, at the device's data-sheet bandwidth.

Prints two lines (``train ...: ... MFU X%`` and ``t2i ...: X s, floor Y s, ratio Z``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import ml_collections  # noqa: E402
import numpy as np  # noqa: E402
from flax import nnx  # noqa: E402

from liquid_jax.data.vocab import VocabLayout  # noqa: E402
from liquid_jax.models import Transformer, TransformerSpec, get_preset  # noqa: E402
from liquid_jax.parallel import MeshConfig, create_sharded, make_mesh  # noqa: E402
from liquid_jax.sample.decode_loop import Decoder  # noqa: E402
from liquid_jax.sample.prompts import left_pad  # noqa: E402
from liquid_jax.sample.t2i import t2i_decode_spec  # noqa: E402
from liquid_jax.train.flops import (  # noqa: E402
    device_hbm_bandwidth,
    device_peak_flops,
    train_flops_per_token,
)
from liquid_jax.train.optimizer import make_optimizer  # noqa: E402
from liquid_jax.train.train_state import create_train_state  # noqa: E402
from liquid_jax.train.train_step import StepConfig, jit_train_step  # noqa: E402

CODES = 8192
OPTIM = ml_collections.ConfigDict(dict(
    lr=1e-5, warmup=0, schedule="constant", b1=0.9, b2=0.95, eps=1e-8,
    weight_decay=0.0, grad_clip=1.0, freeze=(),
))  # fmt: skip
TINY_CODES = 64
TINY = dict(hidden_size=64, intermediate_size=128, num_layers=2, num_heads=4, num_kv_heads=1,
            head_dim=16, vocab_size=512 + TINY_CODES)  # fmt: skip


def _spec(preset: str, tiny: bool, **kw) -> TransformerSpec:
    if tiny:
        return TransformerSpec.for_family("gemma", **TINY, **kw)
    spec = get_preset(preset)
    if preset != "liquid_v1_7b":  # the released model's table already holds the codes
        spec = spec.replace(vocab_size=spec.vocab_size + CODES)
    return spec.replace(**kw)


def _timed(fn, repeats: int) -> float:
    fn()  # compile and warm up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def train_mfu(preset: str, seq: int, rows_per_device: int, steps: int, tiny: bool) -> dict:
    spec = _spec(preset, tiny, dtype="bfloat16", param_dtype="float32", remat="full")
    mesh = make_mesh(MeshConfig(data=1, fsdp=-1, tensor=1))
    state_obj = create_train_state(
        lambda: Transformer(spec, rngs=nnx.Rngs(0)), lambda p: make_optimizer(OPTIM, 1000), mesh
    )
    graphdef, state = nnx.split(state_obj)
    rows = rows_per_device * jax.device_count()
    rng = np.random.default_rng(0)
    ones = np.ones((rows, seq), np.int32)
    batch = dict(tokens=rng.integers(0, spec.vocab_size, (rows, seq)).astype(np.int32),
                 loss_mask=ones, segment_ids=ones, task=0 * ones,
                 positions=np.tile(np.arange(seq, dtype=np.int32), (rows, 1)))  # fmt: skip
    with jax.set_mesh(mesh):
        step = jit_train_step(graphdef, state, StepConfig(), mesh)
        box = {"state": state}

        def run():
            box["state"], metrics = step(box["state"], batch)
            jax.block_until_ready(metrics["loss"])

        seconds = _timed(run, steps)
    tokens = rows * seq
    peak, source = device_peak_flops()
    mfu = train_flops_per_token(spec, seq) * tokens / seconds / (peak * jax.device_count())
    return dict(name=preset if not tiny else "tiny", seconds=seconds, tokens=tokens, mfu=mfu,
                peak=peak, source=source)  # fmt: skip


def decode_floor_bytes(spec: TransformerSpec, codes: int, rows: int, context: float) -> float:
    """Bytes one decoding step must read: the layers' weights and the ``codes`` rows of
    the head in bf16, and ``rows`` KV caches of ``context`` tokens (bf16)."""
    d, hd = spec.hidden_size, spec.head_dim
    embeddings = spec.vocab_size * d * (1 if spec.tie_embeddings else 2)
    layers = spec.num_params() - embeddings - d  # every layer, without the final norm
    kv = 2 * spec.num_layers * spec.num_kv_heads * hd * rows * context
    return 2.0 * (layers + codes * d + kv)


def t2i_latency(preset: str, images: int, grid: int, repeats: int, tiny: bool) -> dict:
    spec = _spec(preset, tiny, dtype="bfloat16", param_dtype="bfloat16")
    codes = TINY_CODES if tiny else CODES
    text = spec.vocab_size - codes
    layout = VocabLayout(text, codes, 7, 8, 9, 2, 1, 0)
    mesh = make_mesh(MeshConfig(data=1, num_devices=1))
    model = create_sharded(lambda: Transformer(spec, rngs=nnx.Rngs(0)), mesh)
    decoder = Decoder(model)
    rng = np.random.default_rng(0)
    prompts = [np.asarray([2, *rng.integers(10, text, 20), 7], np.int32) for _ in range(images)]
    batch = left_pad([r for c in prompts for r in (c, np.asarray([2, 9, 7], np.int32))], 0)
    decode_spec, params = t2i_decode_spec(layout, (grid, grid), cfg_scale=3.0)

    def run():
        out = decoder.generate(batch, np.arange(images), 0, decode_spec, params)
        jax.block_until_ready(jnp.asarray(out.tokens))

    seconds = _timed(run, repeats)
    steps = grid * grid
    per_step = decode_floor_bytes(spec, codes, 2 * images, batch.tokens.shape[1] + steps / 2)
    bandwidth, source = device_hbm_bandwidth()
    floor = steps * per_step / bandwidth
    return dict(name=preset if not tiny else "tiny", seconds=seconds, floor=floor,
                gb_per_step=per_step / 1e9, bandwidth=bandwidth, source=source,
                images=images, steps=steps)  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tiny", action="store_true", help="tiny shapes (CPU, tests)")
    p.add_argument("--train_preset", default="gemma_2b")
    p.add_argument("--seq", type=int, default=2048)
    p.add_argument("--rows_per_device", type=int, default=2)
    p.add_argument("--t2i_preset", default="liquid_v1_7b")
    p.add_argument("--images", type=int, default=4)
    p.add_argument("--grid", type=int, default=32, help="codes per side (32: 1024 codes)")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    if jax.devices()[0].platform == "cpu" and not args.tiny:
        raise SystemExit("accelerator.py: JAX sees only a CPU; pass --tiny (or run on a TPU/GPU)")
    if args.tiny:
        args.seq, args.grid, args.repeats = 64, 4, 1
    kind = jax.devices()[0].device_kind
    t = train_mfu(args.train_preset, args.seq, args.rows_per_device, args.repeats, args.tiny)
    print(f"train {t['name']} on {jax.device_count()} x {kind}: {t['seconds'] * 1e3:.1f} ms "
          f"for {t['tokens']} tokens ({t['tokens'] / t['seconds']:,.0f} tokens/s), "
          f"MFU {t['mfu']:.1%} of {t['peak']:.3g} FLOP/s per device ({t['source']})")  # fmt: skip
    s = t2i_latency(args.t2i_preset, args.images, args.grid, args.repeats, args.tiny)
    print(f"t2i {s['name']} on 1 x {kind}: {s['seconds']:.3g} s for {s['images']} images x "
          f"{s['steps']} codes with CFG, floor {s['floor']:.3g} s ({s['gb_per_step']:.3f} "
          f"GB/step at {s['bandwidth'] / 1e9:.0f} GB/s, {s['source']}), "
          f"ratio {s['seconds'] / s['floor']:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
