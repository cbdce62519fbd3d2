"""Training throughput and MFU against PyTorch, and memory of 7B shapes on a mesh.

    .venv/bin/python benchmarks/train_step.py             # throughput, ours vs torch
    .venv/bin/python benchmarks/train_step.py --memory    # 7B memory per device

Throughput: one full training step (forward, backward, AdamW update) of the same
Gemma-shaped model on the same batch, our jitted pure step vs ``transformers`` +
``torch.optim.AdamW`` eager, float32 on this CPU, in one process.

Memory: ``jax.jit(step).lower(...).compile().memory_analysis()`` of the Gemma-7B and
Qwen2.5-7B train steps (Liquid vocabulary, bf16 compute, float32 master weights and Adam
moments) on a simulated 8-device mesh, without allocating any weights, compiled with
XLA:CPU's memory-minimising program order (``--cpu_concurrency_scheduler``: its default
order). The loss chunk (``train.loss_chunk``), attention blocks
(``model.attn_causal_chunk``), MLP blocks (``model.mlp_chunk``), remat policy
(``model.remat``) and max-z weight come from the recipe, ``configs/liquid.py:base=NAME``;
``--loss_chunk`` / ``--attn_causal_chunk`` / ``--mlp_chunk`` / ``--remat`` override them
(``--loss_chunk 0``: the loss over the whole [B, T, V] logits).
The FLOPs the policy recomputes are ``train/flops.recompute_flops_per_token``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
if "--memory" in sys.argv:
    # Kept: flags already set (e.g. --xla_dump_to, to read XLA's buffer assignment).
    flags = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
    if "--cpu_concurrency_scheduler" not in sys.argv:
        # XLA:CPU orders a program for thread parallelism by default, which here starts
        # the layers' gradient buffers before the forward pass; an accelerator's compiler
        # orders it to fit memory. The memory-minimising order is the closer proxy.
        flags += " --xla_cpu_enable_concurrency_optimized_scheduler=false"
    os.environ["XLA_FLAGS"] = flags.strip()

import jax  # noqa: E402
import ml_collections  # noqa: E402
import numpy as np  # noqa: E402
from common import gemma_pair, report, time_call  # noqa: E402
from flax import nnx  # noqa: E402

from liquid_jax.config_utils import sibling  # noqa: E402
from liquid_jax.models import Transformer, get_preset  # noqa: E402
from liquid_jax.parallel import MeshConfig, make_mesh, state_shardings  # noqa: E402
from liquid_jax.train.flops import (  # noqa: E402
    device_peak_flops,
    recompute_flops_per_token,
    train_flops_per_token,
)
from liquid_jax.train.optimizer import make_optimizer  # noqa: E402
from liquid_jax.train.train_state import TrainState, create_train_state  # noqa: E402
from liquid_jax.train.train_step import StepConfig, jit_train_step  # noqa: E402

OPTIM = ml_collections.ConfigDict(dict(
    lr=1e-4, warmup=0, schedule="constant", b1=0.9, b2=0.95, eps=1e-8,
    weight_decay=0.0, grad_clip=0.0, freeze=(),
))  # fmt: skip


def _batch(b, t, vocab, seed=0):
    tokens = np.random.default_rng(seed).integers(0, vocab, (b, t)).astype(np.int32)
    ones = np.ones((b, t), np.int32)
    positions = np.tile(np.arange(t, dtype=np.int32), (b, 1))
    return dict(tokens=tokens, loss_mask=ones, segment_ids=ones, positions=positions,
                task=0 * ones)  # fmt: skip


def throughput(args) -> None:

    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    hf, loaded = gemma_pair(args.vocab, args.hidden, args.layers)
    hf.train()
    spec = loaded.spec
    mesh = make_mesh(MeshConfig(data=1, num_devices=1))
    state_obj = create_train_state(
        lambda: Transformer(spec, rngs=nnx.Rngs(0)), lambda p: make_optimizer(OPTIM, 100), mesh
    )
    nnx.update(state_obj.model, nnx.state(loaded, nnx.Param))
    graphdef, state = nnx.split(state_obj)
    step = jit_train_step(graphdef, state, StepConfig(), mesh)
    batch = _batch(args.batch, args.seq, args.vocab)
    box = {"state": state}

    def ours():
        box["state"], m = step(box["state"], batch)
        jax.block_until_ready(m["loss"])

    opt = torch.optim.AdamW(hf.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.0)
    tt = torch.as_tensor(batch["tokens"]).long()

    def theirs():
        opt.zero_grad(set_to_none=True)
        hf(input_ids=tt, labels=tt).loss.backward()
        opt.step()

    t_ours, t_theirs = time_call(ours, 2, 5), time_call(theirs, 2, 5)
    tokens = args.batch * args.seq
    flops = train_flops_per_token(spec, args.seq) * tokens
    peak, source = device_peak_flops()
    report(
        f"train step (fwd+bwd+AdamW), Gemma {args.layers}L d={args.hidden} V={args.vocab}, "
        f"batch {args.batch} x {args.seq}, {jax.devices()[0].device_kind}",
        [("liquid_jax (jit)", t_ours, f"{tokens / t_ours:,.0f} tok/s, "
          f"MFU {flops / t_ours / peak:.1%} of {peak:.3g} FLOP/s ({source})"),
         ("transformers + AdamW", t_theirs, f"{tokens / t_theirs:,.0f} tok/s")],
        ours="liquid_jax (jit)", peer="transformers + AdamW",
    )  # fmt: skip


def memory(args) -> None:
    mesh = make_mesh(MeshConfig(data=1, fsdp=-1, tensor=1))
    configs = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")
    liquid = sibling(os.path.join(configs, "liquid.py"), "liquid")
    for name in args.presets.split(","):
        config = liquid.get_config(f"base={name}")
        step_cfg = StepConfig.from_config(config.train, text_vocab_size=0)
        attn_chunk = config.model.attn_causal_chunk
        mlp_chunk = config.model.mlp_chunk if args.mlp_chunk < 0 else args.mlp_chunk
        if args.loss_chunk >= 0:
            step_cfg = dataclasses.replace(step_cfg, loss_chunk=args.loss_chunk)
        if args.attn_causal_chunk >= 0:
            attn_chunk = args.attn_causal_chunk
        spec = get_preset(name)
        remat = args.remat or config.model.remat
        spec = spec.replace(vocab_size=spec.vocab_size + 8192, dtype="bfloat16", remat=remat,
                            attn_causal_chunk=attn_chunk, mlp_chunk=mlp_chunk)  # fmt: skip
        abstract = nnx.eval_shape(
            lambda spec=spec: TrainState(Transformer(spec, rngs=nnx.Rngs(0)),
                                         make_optimizer(OPTIM, 100))
        )  # fmt: skip
        graphdef, state = nnx.split(abstract)
        shardings = state_shardings(state, mesh)
        state = jax.tree.map(
            lambda v, s: jax.ShapeDtypeStruct(v.shape, v.dtype, sharding=s), state, shardings
        )
        batch = jax.tree.map(
            lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype),
            _batch(args.mem_batch, args.mem_seq, 8),
        )
        with jax.set_mesh(mesh):
            compiled = jit_train_step(graphdef, state, step_cfg, mesh).lower(state, batch).compile()
        mem = compiled.memory_analysis()
        gib = 2**30
        total = mem.argument_size_in_bytes + mem.temp_size_in_bytes + mem.output_size_in_bytes
        total -= mem.alias_size_in_bytes
        tokens = args.mem_batch * args.mem_seq / mesh.size  # per device
        print(f"{name}: {sum(x.size for x in jax.tree.leaves(state)) / 1e9:.2f}B state values, "
              f"mesh {dict(mesh.shape)}, batch {args.mem_batch} x {args.mem_seq}: per device "
              f"arguments {mem.argument_size_in_bytes / gib:.2f} GiB, temporaries "
              f"{mem.temp_size_in_bytes / gib:.2f} GiB "
              f"({mem.temp_size_in_bytes / 2**20 / tokens:.2f} MiB/token), "
              f"total {total / gib:.2f} GiB "
              f"[loss_chunk {step_cfg.loss_chunk}, attn_causal_chunk {attn_chunk}, "
              f"mlp_chunk {mlp_chunk}, "
              f"max_z {step_cfg.max_z_weight:g}, remat {remat} (recomputes "
              f"{recompute_flops_per_token(spec, args.mem_seq) / 1e9:.1f} of "
              f"{train_flops_per_token(spec, args.mem_seq) / 1e9:.1f} GFLOP/token), "
              f"{'concurrency' if args.cpu_concurrency_scheduler else 'memory'} "
              "scheduler]")  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--memory", action="store_true")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seq", type=int, default=256)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--vocab", type=int, default=8192)
    p.add_argument("--mem_batch", type=int, default=8)
    p.add_argument("--mem_seq", type=int, default=2048)
    p.add_argument("--loss_chunk", type=int, default=-1, help="-1: the recipe's")
    p.add_argument("--attn_causal_chunk", type=int, default=-1, help="-1: the recipe's")
    p.add_argument("--mlp_chunk", type=int, default=-1, help="-1: the recipe's")
    p.add_argument("--remat", default="", help="model.remat; empty: the recipe's")
    p.add_argument("--presets", default="gemma_7b,qwen2.5_7b", help="comma-separated")
    p.add_argument("--cpu_concurrency_scheduler", action="store_true",
                   help="XLA:CPU's default program order (more memory; see the top)")  # fmt: skip
    args = p.parse_args()
    memory(args) if args.memory else throughput(args)


if __name__ == "__main__":
    main()
