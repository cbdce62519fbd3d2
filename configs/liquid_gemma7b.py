"""The paper's main run: Gemma-7B base, lr 2e-5 (cosine, 3% warmup), batch 1024 x 2048,
80/20 T2I/I2T, grad norm 0.5 and the max-z loss, bf16 compute, float32 master weights.

    liquid-jax import-hf --hf_dir /ckpt/gemma-7b --out /ckpt/liquid-gemma7b-init
    liquid-jax train --config configs/liquid_gemma7b.py:init=/ckpt/liquid-gemma7b-init \\
        --config.data.text_sources='("jsonl:/data/text/*.jsonl",)' \\
        --config.data.image_text_sources='("codes:/data/codes/train",)' \\
        --workdir gs://BUCKET/liquid-gemma7b

The same recipe for the scaling-study bases: ``configs/liquid.py:base=qwen2.5_7b``.
"""

from liquid_jax.config_utils import liquid_recipe, parse_arg


def get_config(arg: str = ""):
    return liquid_recipe(parse_arg(arg, base="gemma_7b", init="", runlocal=False, steps=30000))
