"""The paper's main run: Gemma-7B base, lr 2e-5 (cosine, 3% warmup), batch 1024 x 2048,
80/20 T2I/I2T, grad norm 0.5 and the max-z loss, bf16 compute, float32 master weights.

    liquid-jax import-hf --hf_dir /ckpt/gemma-7b --out /ckpt/liquid-gemma7b-init
    liquid-jax train --config configs/liquid_gemma7b.py:init=/ckpt/liquid-gemma7b-init \\
        --config.data.text_sources='("jsonl:/data/text/*.jsonl",)' \\
        --config.data.image_text_sources='("codes:/data/codes/train",)' \\
        --workdir gs://BUCKET/liquid-gemma7b

``configs/liquid.py``'s recipe with the base fixed; the same recipe for the
scaling-study bases: ``configs/liquid.py:base=qwen2.5_7b``.
"""

import ml_collections

from liquid_jax.config_utils import parse_arg, sibling


def get_config(arg: str = "") -> ml_collections.ConfigDict:
    args = parse_arg(arg, init="", steps=30000, runlocal=False)
    return sibling(__file__, "liquid").recipe(base="gemma_7b", **args)
