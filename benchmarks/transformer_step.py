"""Forward+backward of a small Gemma-shaped model: our jitted JAX step vs transformers.

    .venv/bin/python benchmarks/transformer_step.py [--batch 8 --seq 256]

Both sides hold the same weights (the HF model is converted with ``load_hf``), run in
float32 on this machine's CPU in one process, and compute the mean next-token loss and
its gradients with respect to every parameter.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
import torch  # noqa: E402
from common import gemma_pair, report, time_call  # noqa: E402
from flax import nnx  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seq", type=int, default=256)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--vocab", type=int, default=8192)
    args = p.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)

    hf, model = gemma_pair(args.vocab, args.hidden, args.layers, max_position_embeddings=args.seq)
    hf.train()
    tokens = np.random.default_rng(0).integers(0, args.vocab, (args.batch, args.seq))

    graphdef, params, rest = nnx.split(model, nnx.Param, ...)

    @jax.jit
    def jax_step(params, tokens):
        def loss_fn(params):
            logits = nnx.merge(graphdef, params, rest)(tokens)[:, :-1, : args.vocab]
            return optax.softmax_cross_entropy_with_integer_labels(logits, tokens[:, 1:]).mean()

        return jax.value_and_grad(loss_fn)(params)

    jt = jnp.asarray(tokens, jnp.int32)
    tt = torch.as_tensor(tokens)

    def torch_step():
        hf.zero_grad(set_to_none=True)
        out = hf(input_ids=tt, labels=tt)
        out.loss.backward()
        return out.loss

    jl = float(jax_step(params, jt)[0])
    tl = float(torch_step())
    print(f"loss: ours {jl:.5f}  transformers {tl:.5f}  (same weights, same tokens)")
    t_jax = time_call(lambda: jax.block_until_ready(jax_step(params, jt)))
    t_torch = time_call(torch_step)
    toks = args.batch * args.seq
    report(
        f"Gemma-shaped fwd+bwd, {args.layers}L d={args.hidden} V={args.vocab}, "
        f"batch {args.batch} x {args.seq}, {jax.devices()[0].platform}",
        [
            ("liquid_jax (jit)", t_jax, f"{toks / t_jax:,.0f} tokens/s"),
            ("transformers (torch eager)", t_torch, f"{toks / t_torch:,.0f} tokens/s"),
        ],
        ours="liquid_jax (jit)",
        peer="transformers (torch eager)",
    )


if __name__ == "__main__":
    main()
