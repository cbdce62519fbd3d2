"""What config files share: ``get_config(arg)`` parsing, loading a sibling config file,
and the default sections of an LLM training config. The files themselves, and the
recipes, live in the top-level ``configs/``.
"""

from __future__ import annotations

import importlib.util
import os
import types

import ml_collections
from ml_collections import config_dict

from liquid_jax.errors import ConfigError

_TRUE = ("1", "true", "yes")
_FALSE = ("0", "false", "no")


def parse_arg(arg: str | None, **defaults) -> ml_collections.ConfigDict:
    """``"runlocal,variant=7b"`` -> ConfigDict(runlocal=True, variant="7b") over defaults.

    Unknown names are an error listing the known ones.
    """
    out = dict(defaults)
    for part in filter(None, (arg or "").split(",")):
        key, eq, value = part.partition("=")
        if key not in out:
            raise ConfigError(f"config arg {key!r} unknown; known: {sorted(out)}")
        kind = type(out[key])
        if kind is bool and not eq:
            out[key] = True
        elif kind is bool:
            if value.lower() not in _TRUE + _FALSE:
                raise ConfigError(f"config arg {key}={value!r}: not a boolean "
                                  f"({'/'.join(_TRUE)} or {'/'.join(_FALSE)})")  # fmt: skip
            out[key] = value.lower() in _TRUE
        else:
            try:
                out[key] = kind(value)
            except ValueError:
                raise ConfigError(f"config arg {key}={value!r}: not a {kind.__name__}") from None
    return ml_collections.ConfigDict(out)


def sibling(here: str, name: str) -> types.ModuleType:
    """The module of config file ``NAME.py`` in the folder of ``here`` (a ``__file__``).

    ``--config configs/X.py`` runs a file as a script, with ``configs/`` not importable
    as a package, so config files reach each other by path.
    """
    path = os.path.join(os.path.dirname(os.path.abspath(here)), f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"_liquid_config_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def base_config() -> ml_collections.ConfigDict:
    """The sections and keys every LLM training config has (stable names for scripts:
    ``total_steps``, ``log_every_steps``, ``checkpoint_every_steps``, ``eval_every_steps``,
    ``seed``).

    The one place their defaults live: ``mesh`` holds every ``parallel.MeshConfig`` field,
    ``data`` every ``data.pipeline.config.PipelineConfig`` field (plus ``validation``),
    ``train`` what ``train.train_step.StepConfig.from_config`` reads; their dataclass
    defaults equal these (tests/train/test_configs.py). A ``placeholder`` is ``None``
    that ``--config.a.b=N`` can still set.
    """
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
        {"data": -1, "fsdp": 1, "tensor": 1, "dcn_data": 1, "dcn_fsdp": 1, "dcn_tensor": 1,
         "num_devices": -1}  # -1: every device
    )  # fmt: skip
    c.axis_rules = ()  # () = liquid_jax.parallel.DEFAULT_RULES

    c.tokenizer = ml_collections.ConfigDict({"path": "", "train_corpus": "", "vocab_size": 1024})
    c.model = ml_collections.ConfigDict()
    c.model.init_from = ""  # an import-hf directory; else preset / family + spec
    c.model.preset = ""
    c.model.family = "gemma"
    c.model.spec = ml_collections.ConfigDict()
    c.model.remat = "none"
    c.model.attn_causal_chunk = 0  # > 0: training attention in causal query blocks (CPU)
    c.model.mlp_chunk = 0  # > 0: the MLP's intermediate features in blocks (memory)
    # auto | xla | splash | cudnn | dot_product (models/attention_kernels.py)
    c.model.attention = "auto"
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
    c.data.num_epochs = config_dict.placeholder(int)  # None: repeat forever
    c.data.num_workers = 0
    c.data.worker_buffer_size = 2
    c.data.read_threads = 2
    c.data.read_buffer = 128
    c.data.num_packing_bins = 0
    c.data.text_overflow = "split"
    c.data.multires = False
    c.data.downsample = 16
    c.data.max_skip_fraction = 0.1
    c.data.max_skips = config_dict.placeholder(int)  # None: no limit on the count
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
    c.train.loss_chunk = 0  # > 0: the loss's LM head over this many positions at a time
    c.train.max_nonfinite_steps = 10
    c.train.peak_flops = 0.0  # 0: from the device kind
    return c
