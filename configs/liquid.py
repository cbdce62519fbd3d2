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
that shape (useful to check memory and throughput). ``steps`` is the run's length;
``runlocal`` shrinks batch and length for a quick check on a small slice. Presets for one
base call ``recipe`` (``liquid_gemma7b.py``, the paper's main run).
"""

import ml_collections

from liquid_jax.config_utils import base_config, parse_arg

# Bases of 7B and more get the paper's spike protection (grad norm 0.5, max-z loss).
LARGE = ("gemma_7b", "gemma2_9b", "qwen2.5_7b", "qwen2.5_14b", "qwen2.5_32b",
         "llama3.1_8b", "liquid_v1_7b")  # fmt: skip


def recipe(base: str, init: str, steps: int, runlocal: bool) -> ml_collections.ConfigDict:
    """The paper's recipe for ``base`` (a preset name), started from ``init`` (an import-hf
    directory, or "" for random weights), ``steps`` long; ``runlocal``: a quick check."""
    c = base_config()
    c.total_steps = steps
    c.log_every_steps = 10
    c.checkpoint_every_steps = 1000
    c.eval_every_steps = 1000
    c.eval_steps = 16
    c.mesh.update(data=1, fsdp=-1, tensor=1)  # ZeRO-3-like: everything sharded over fsdp

    c.model.init_from = init
    c.model.preset = "" if init else base
    c.model.remat = "full"
    c.model.param_dtype = "float32"  # master weights and Adam moments in float32
    c.model.dtype = "bfloat16"
    # Attention in causal blocks of 512 queries, the MLP in blocks of <= 2048 features, the
    # loss's LM head over 512 positions at a time (no [B, T, V] logits,
    # vocabulary-parallel): 5.84 GiB of temporaries per device for one 4096-token row on
    # Gemma-7B, ~0.36 MiB per further token (docs/launch.md, benchmarks/train_step.py
    # --memory).
    c.model.attn_causal_chunk = 512
    c.model.mlp_chunk = 2048

    c.data.seq_len = 2048
    c.data.batch_size = 1024
    c.data.t2i_fraction = 0.8  # of image-text pairs: 80% T2I, 20% I2T
    c.data.text_weight = 1.0  # 30M documents : 30M pairs in the paper
    c.data.image_text_weight = 1.0
    c.data.num_image_codes = 8192
    c.data.downsample = 16
    c.data.num_workers = 8

    c.optim.lr = 2e-5
    c.optim.schedule = "cosine"
    c.optim.warmup = 0.03
    c.optim.weight_decay = 0.0
    c.optim.grad_clip = 0.5 if base in LARGE else 1.0
    c.train.max_z_weight = 2e-4 if base in LARGE else 0.0
    c.train.loss_chunk = 512

    if runlocal:
        c.data.seq_len, c.data.batch_size, c.data.num_workers = 512, 8, 0
        c.total_steps, c.checkpoint_every_steps, c.eval_every_steps = 20, 10, 10
    return c


def get_config(arg: str = "") -> ml_collections.ConfigDict:
    args = parse_arg(arg, base="gemma_7b", init="", steps=30000, runlocal=False)
    return recipe(**args)
