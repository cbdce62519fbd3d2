"""Liquid on a real base LLM: the paper's recipe (Wu et al., section 4) for any base.

    # 1. base LLM -> Liquid vocabulary (text + 8192 image codes, mean-resized rows)
    liquid-jax import-hf --hf_dir /ckpt/gemma-7b --out /ckpt/liquid-gemma7b-init
    # 2. images -> codes, once, offline
    liquid-jax encode-images --config configs/encode_shapes.py --workdir /data/codes
    # 3. train (every host of a pod runs the same command)
    liquid-jax train --config configs/liquid.py:base=gemma_7b,init=/ckpt/liquid-gemma7b-init \\
        --config.data.text_sources='("jsonl:/data/text/*.jsonl",)' \\
        --config.data.image_text_sources='("codes:/data/codes/train",)' \\
        --workdir gs://BUCKET/run  # Cloud Storage directly, see docs/launch.md

``base`` is a preset name (gemma_7b, gemma2_2b, gemma2_9b, qwen2.5_0.5b, qwen2.5_7b,
qwen2.5_32b, llama3.2_1b, ...); without ``init`` the model starts from random weights of
that shape (useful to check memory and throughput). ``runlocal`` shrinks batch and length
for a quick check on a small slice.
"""

from liquid_jax.config_utils import liquid_recipe, parse_arg


def get_config(arg: str = ""):
    return liquid_recipe(parse_arg(arg, base="gemma_7b", init="", runlocal=False, steps=30000))
