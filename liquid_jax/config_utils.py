"""What config files share: ``get_config(arg)`` parsing and the default sections of an
LLM training config (the files themselves live in the top-level ``configs/``)."""

from __future__ import annotations

import ml_collections


def parse_arg(arg: str | None, **defaults) -> ml_collections.ConfigDict:
    """``"runlocal,variant=7b"`` -> ConfigDict(runlocal=True, variant="7b") over defaults.

    Unknown names are an error listing the known ones.
    """
    out = dict(defaults)
    for part in filter(None, (arg or "").split(",")):
        key, eq, value = part.partition("=")
        if key not in out:
            raise ValueError(f"config arg {key!r} unknown; known: {sorted(out)}")
        kind = type(out[key])
        if kind is bool:
            out[key] = value.lower() in ("1", "true", "yes") if eq else True
        else:
            out[key] = kind(value)
    return ml_collections.ConfigDict(out)


def base_config() -> ml_collections.ConfigDict:
    """The sections and keys every LLM training config has (stable names for scripts:
    ``total_steps``, ``log_every_steps``, ``checkpoint_every_steps``, ``eval_every_steps``,
    ``seed``)."""
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.total_steps = 1000
    c.log_every_steps = 10
    c.checkpoint_every_steps = 500
    c.eval_every_steps = 500
    c.eval_steps = 8
    c.keep_checkpoints = 3
    # ICI sizes per slice, and DCN factors across slices (multi-slice TPU).
    c.mesh = ml_collections.ConfigDict(
        {"data": -1, "fsdp": 1, "tensor": 1, "dcn_data": 1, "dcn_fsdp": 1, "dcn_tensor": 1}
    )
    c.axis_rules = ()  # () = liquid_jax.parallel.DEFAULT_RULES

    c.tokenizer = ml_collections.ConfigDict({"path": "", "train_corpus": "", "vocab_size": 1024})
    c.model = ml_collections.ConfigDict()
    c.model.init_from = ""  # an import-hf directory; else preset / family + spec
    c.model.preset = ""
    c.model.family = "gemma"
    c.model.spec = ml_collections.ConfigDict()
    c.model.remat = "none"
    c.model.attn_causal_chunk = 0  # > 0: training attention in causal query blocks (CPU)
    c.model.param_dtype = "float32"
    c.model.dtype = "float32"
    c.model.vqgan = ""  # the image tokenizer of the codes (taming dir): sampling, export

    c.data = ml_collections.ConfigDict()
    c.data.seq_len = 2048
    c.data.batch_size = 8
    c.data.seed = 0
    c.data.t2i_fraction = 0.8
    c.data.cfg_dropout = 0.1
    c.data.text_weight = 1.0
    c.data.image_text_weight = 1.0
    c.data.text_sources = ()
    c.data.image_text_sources = ()
    c.data.num_image_codes = 8192
    c.data.num_workers = 0
    c.data.num_packing_bins = 0
    c.data.downsample = 16
    c.data.min_records_for_fraction = 1000
    c.data.validation = ml_collections.ConfigDict(
        {"text_sources": (), "image_text_sources": (), "num_epochs": 1}
    )

    c.optim = ml_collections.ConfigDict()
    c.optim.lr = 2e-5
    c.optim.warmup = 0.03  # fraction of total_steps (or a step count if >= 1)
    c.optim.schedule = "cosine"
    c.optim.min_lr_ratio = 0.0
    c.optim.b1 = 0.9
    c.optim.b2 = 0.95
    c.optim.eps = 1e-8
    c.optim.weight_decay = 0.0
    c.optim.grad_clip = 1.0
    c.optim.freeze = ()  # regexes of parameter paths to keep fixed

    c.train = ml_collections.ConfigDict()
    c.train.grad_accum = 1
    c.train.max_z_weight = 0.0  # 2e-4 with Liquid's max-z loss
    c.train.new_rows_only = False  # train only the new (image) embedding rows
    c.train.max_nonfinite_steps = 10
    c.train.peak_flops = 0.0  # 0: from the device kind
    return c


# Bases of 7B and more get the paper's spike protection (grad norm 0.5, max-z loss).
LARGE = ("gemma_7b", "gemma2_9b", "qwen2.5_7b", "qwen2.5_14b", "qwen2.5_32b",
         "llama3.1_8b", "liquid_v1_7b")  # fmt: skip


def liquid_recipe(args) -> ml_collections.ConfigDict:
    """The paper's recipe for ``args.base`` (a preset name), ``args.init`` (an import-hf
    directory or ""), ``args.steps`` and ``args.runlocal``."""
    c = base_config()
    c.total_steps = args.steps
    c.log_every_steps = 10
    c.checkpoint_every_steps = 1000
    c.eval_every_steps = 1000
    c.eval_steps = 16
    c.mesh.update(data=1, fsdp=-1, tensor=1)  # ZeRO-3-like: everything sharded over fsdp

    c.model.init_from = args.init
    c.model.preset = "" if args.init else args.base
    c.model.remat = "full"
    c.model.param_dtype = "float32"  # master weights and Adam moments in float32
    c.model.dtype = "bfloat16"

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
    c.optim.grad_clip = 0.5 if args.base in LARGE else 1.0
    c.train.max_z_weight = 2e-4 if args.base in LARGE else 0.0

    if args.runlocal:
        c.data.seq_len, c.data.batch_size, c.data.num_workers = 512, 8, 0
        c.total_steps, c.checkpoint_every_steps, c.eval_every_steps = 20, 10, 10
    return c
