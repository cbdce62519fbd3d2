"""VQGAN encode / decode throughput: our jitted JAX codec vs the PyTorch references.

    .venv/bin/python benchmarks/vqgan_codec.py [--size 256 --batch 4 --ch 64]

Same weights on both sides (our random init exported as a taming state dict). Encode is
compared with ``transformers.ChameleonVQVAE`` (taming's encoder + quantizer), decode with
``diffusers.VQModel`` (taming's decoder), float32 on this machine's CPU, one process.
The default is Chameleon's architecture (ch_mult 1,1,2,2,4, ds16) at reduced width so
the run stays short; ``--ch 128 --size 512`` is the released size.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

import jax  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from common import report, time_call  # noqa: E402
from flax import nnx  # noqa: E402

from liquid_jax.export.vqgan import vqgan_to_state_dict  # noqa: E402
from liquid_jax.export.vqgan_torch import chameleon_vqvae, diffusers_vqmodel  # noqa: E402
from liquid_jax.models import VQGAN, chameleon_vqgan, make_decode_fn, make_encode_fn  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--ch", type=int, default=64)
    args = p.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)

    config = chameleon_vqgan(ch=args.ch, resolution=args.size)
    model = VQGAN(config, rngs=nnx.Rngs(0))
    state_dict = vqgan_to_state_dict(model)
    chameleon = chameleon_vqvae(state_dict, config)
    diffusers = diffusers_vqmodel(state_dict, config)

    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, (args.batch, args.size, args.size, 3)).astype(np.float32)
    graphdef, state = nnx.split(model)
    encode, decode = make_encode_fn(graphdef), make_decode_fn(graphdef)
    codes = encode(state, images)
    h = args.size // config.downsample_factor

    t_images = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
    t_codes = torch.from_numpy(np.asarray(codes)).reshape(-1).long()

    def torch_encode():
        with torch.no_grad():
            return chameleon.encode(t_images)

    def torch_decode():
        with torch.no_grad():
            return diffusers.decode(
                t_codes, force_not_quantize=True, shape=(args.batch, h, h, config.embed_dim)
            )

    theirs = torch_encode().image_tokens.reshape(args.batch, h, h).numpy()
    agree = float(np.mean(theirs == np.asarray(codes)))
    print(f"codes equal to ChameleonVQVAE's: {agree:.4f} of {theirs.size}")

    n = args.batch
    t_enc = time_call(lambda: jax.block_until_ready(encode(state, images)), 1, 3)
    t_tenc = time_call(torch_encode, 1, 3)
    t_dec = time_call(lambda: jax.block_until_ready(decode(state, codes)), 1, 3)
    t_tdec = time_call(torch_decode, 1, 3)
    title = f"VQGAN ch={args.ch} ds{config.downsample_factor}, {n} x {args.size}^2"
    report(
        f"{title} encode",
        [
            ("liquid_jax encode", t_enc, f"{n / t_enc:.2f} images/s"),
            ("ChameleonVQVAE encode", t_tenc, f"{n / t_tenc:.2f} images/s"),
        ],
        ours="liquid_jax encode",
        peer="ChameleonVQVAE encode",
    )
    report(
        f"{title} decode",
        [
            ("liquid_jax decode", t_dec, f"{n / t_dec:.2f} images/s"),
            ("diffusers VQModel decode", t_tdec, f"{n / t_tdec:.2f} images/s"),
        ],
        ours="liquid_jax decode",
        peer="diffusers VQModel decode",
    )


if __name__ == "__main__":
    main()
