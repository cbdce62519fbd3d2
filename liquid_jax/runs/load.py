"""One way to load a model from a run directory: a train workdir or an HF directory.

    loaded = load_model("runs/liquid")            # the newest checkpoint of a train run
    loaded = load_model("exports/liquid_hf")      # an HF-format Liquid directory
    loaded = load_model(hf_dir="Liquid_V1_7B")    # the released model, as downloaded

A train workdir gives the newest checkpoint's model (never the optimizer's moments), its
``tokenizer/``, ``liquid_vocab.json`` and the VQGAN named in ``run_info.json``; an HF
directory (``config.json`` + safetensors + tokenizer, as ``import-hf`` and ``export``
write, or as Liquid's authors released it) gives its weights and the ``vqgan/`` beside
them. Its ``liquid_vocab.json`` says where text, special tokens and image codes live;
without one (the released checkpoints) the layout is the reference's: the text
vocabulary is the tokenizer's length, image codes are the rows after it
(``config.json``'s ``vocab_size`` minus that), and ``<boi>``, ``<eoi>``,
``<unconditional>`` are the tokenizer's slots of those names, else ``<unused0..2>`` (or
the three tokens ``special_tokens`` names). Parameters are cast to ``dtype`` once, here.
Paths may be local or URLs (``gs://``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from absl import logging
from flax import nnx

from liquid_jax import fileio
from liquid_jax.data.tokenizers.base import GEMMA_RESERVED_SLOTS, TextTokenizer, vocab_layout
from liquid_jax.data.tokenizers.load import load_tokenizer
from liquid_jax.data.vocab import VocabLayout
from liquid_jax.errors import ConfigError, InputError, PathNotFoundError
from liquid_jax.export.hf import load_hf, read_config
from liquid_jax.models import Transformer
from liquid_jax.runs import layout as run_layout
from liquid_jax.runs.trained_model import load_trained_model, read_run_info


class NoModelError(PathNotFoundError):
    """No HF export or usable checkpoint where a model was expected."""


@dataclasses.dataclass
class LoadedModel:
    """A model with what it needs to read and write tokens.

    ``vqgan``: the VQGAN checkpoint that goes with it (a path), or None when none is
    known; ``step``: the checkpoint's step (None for an HF directory).
    """

    model: Transformer
    layout: VocabLayout
    tokenizer: TextTokenizer
    vqgan: str | None
    step: int | None
    source: str


DTYPES = {"bfloat16": jnp.bfloat16, "float32": jnp.float32}


def sampling_dtype(name=None):
    """``"bfloat16"`` / ``"float32"`` (or a dtype) -> the dtype; None: float32 on CPU,
    bfloat16 on accelerators (where float32 would double the weights' memory)."""
    if name is None or name == "":
        return jnp.float32 if jax.default_backend() == "cpu" else jnp.bfloat16
    if isinstance(name, str):
        if name not in DTYPES:
            raise ConfigError(f"dtype {name!r}: use one of {sorted(DTYPES)}")
        return DTYPES[name]
    return jnp.dtype(name).type


def cast_model(model: Transformer, dtype) -> Transformer:
    """``model`` with floating parameters (and computation) in ``dtype``, cast once; the
    model itself when it already is. Sharded parameters stay on their devices."""
    spec, dtype = model.spec, jnp.dtype(dtype)
    if jnp.dtype(spec.param_dtype) == dtype and jnp.dtype(spec.dtype) == dtype:
        return model
    new = spec.replace(param_dtype=dtype, dtype=dtype)
    graphdef, _ = nnx.split(nnx.eval_shape(lambda: Transformer(new, rngs=nnx.Rngs(0))))
    floating = lambda x: jnp.issubdtype(x.dtype, jnp.floating)
    state = jax.tree.map(lambda x: x.astype(dtype) if floating(x) else x, nnx.state(model))
    return nnx.merge(graphdef, state)


def find_hf_dir(workdir: str | None, hf_dir: str | None = None) -> str:
    """The HF model directory to load, or ``NoModelError`` saying what is missing."""
    if hf_dir:
        if not (run_layout.is_hf_liquid_dir(hf_dir) or run_layout.is_hf_model_dir(hf_dir)):
            raise NoModelError(
                f"{hf_dir}: not an HF-format Liquid directory (needs {run_layout.HF_CONFIG} "
                "and the tokenizer files, tokenizer.model or tokenizer.json, as released "
                "models have; or run liquid-jax import-hf on a text LLM)"
            )
        return hf_dir
    if not workdir:
        raise NoModelError("pass --workdir or --hf_dir")
    if run_layout.is_hf_liquid_dir(workdir) or run_layout.is_hf_model_dir(workdir):
        return workdir
    raise NoModelError(
        f"{workdir}: no HF export / checkpoint found (expected {run_layout.HF_CONFIG} and a "
        f"tokenizer there, or {run_layout.RUN_INFO} and {run_layout.CHECKPOINTS}/); "
        "pass --hf_dir"
    )


def released_layout(
    tokenizer: TextTokenizer, model_vocab: int, where: str, slots: Sequence[str]
) -> VocabLayout:
    """The reference's layout of a model without ``liquid_vocab.json``: text ids are the
    tokenizer's, image code ``c`` is ``len(tokenizer) + c`` up to ``model_vocab``."""
    if getattr(tokenizer, "special_tokens_how", "present") == "append":
        raise InputError(
            f"{where}: the tokenizer has neither <boi>/<eoi>/<unconditional> nor "
            f"{'/'.join(slots)} for them; name the model's three tokens with --boi_token, "
            "--eoi_token and --uncond_token (a text-only LLM: run liquid-jax import-hf)"
        )
    text = tokenizer.vocab_size
    if text > model_vocab:
        raise InputError(
            f"{where}: the tokenizer has {text} tokens but {run_layout.HF_CONFIG}'s "
            f"vocab_size is only {model_vocab}: the tokenizer does not belong to this model"
        )
    if text == model_vocab:
        raise InputError(
            f"{where}: {run_layout.HF_CONFIG}'s vocab_size {model_vocab} is the tokenizer's "
            "length: a text-only model without image codes (run liquid-jax import-hf)"
        )
    return vocab_layout(tokenizer, model_vocab - text)


def find_vqgan(hf_dir: str | None, workdir: str | None, vqgan: str | None = None) -> str | None:
    """The VQGAN checkpoint path: ``vqgan`` if given, else one found next to the model."""
    if vqgan:
        if not fileio.exists(vqgan):
            raise PathNotFoundError(f"vqgan: {vqgan} does not exist")
        return vqgan
    for base in (hf_dir, workdir):
        if not base:
            continue
        for candidate in (fileio.join(base, run_layout.VQGAN), base):
            if fileio.isfile(fileio.join(candidate, run_layout.VQGAN_YAML)):
                return candidate
    return None


def check_tokenizer(tokenizer: TextTokenizer, layout: VocabLayout, where: str) -> None:
    """The tokenizer fits the layout's text ids and agrees on the special tokens."""
    if tokenizer.vocab_size > layout.text_vocab_size:
        raise InputError(
            f"{where}: the tokenizer has {tokenizer.vocab_size} tokens but "
            f"{run_layout.VOCAB} reserves only {layout.text_vocab_size} text ids"
        )
    for name in ("boi_id", "eoi_id", "unconditional_id"):
        if getattr(tokenizer, name) != getattr(layout, name):
            raise InputError(
                f"{where}: the tokenizer's {name}={getattr(tokenizer, name)} differs from "
                f"{run_layout.VOCAB}'s {getattr(layout, name)}"
            )


def load_model(
    path: str | None = None,
    *,
    hf_dir: str | None = None,
    vqgan: str | None = None,
    step: int | None = None,
    mesh=None,
    dtype=None,
    special_tokens: Sequence[str] | None = None,
) -> LoadedModel:
    """The model in ``hf_dir``, else in ``path`` (a train workdir or an HF directory).

    ``step`` picks a checkpoint of a train workdir (default: the newest); ``vqgan``
    overrides the VQGAN found beside the model; ``dtype`` is the parameters' and the
    computation's (None: a train checkpoint's own, float32 for an HF directory);
    ``special_tokens`` names the tokenizer's tokens for ``<boi>``, ``<eoi>``,
    ``<unconditional>`` (default ``<unused0..2>``) in a directory without
    ``liquid_vocab.json``. Raises ``NoModelError`` when there is
    neither a train workdir nor an HF directory, ``FileNotFoundError`` for a missing
    ``vqgan``, ``InputError`` for a tokenizer that does not fit the model.
    """
    if not hf_dir and path and run_layout.is_train_workdir(path):
        model, layout, tokenizer, step = load_trained_model(path, step=step, mesh=mesh)
        logging.info("load: the model of %s at step %d", path, step)
        vqgan = vqgan or read_run_info(path).get("vqgan") or None
        if dtype is not None:
            model = cast_model(model, sampling_dtype(dtype))
        return LoadedModel(model, layout, tokenizer, find_vqgan(None, path, vqgan), step, path)
    source = find_hf_dir(path, hf_dir)
    slots = tuple(special_tokens or GEMMA_RESERVED_SLOTS)
    if len(slots) != 3:
        raise ConfigError(f"special tokens {list(slots)}: name exactly <boi>, <eoi>, <uncond>")
    tokenizer = load_tokenizer(source, reserved_slots=slots)
    if fileio.exists(fileio.join(source, run_layout.VOCAB)):
        layout = VocabLayout.load(source)
    else:
        vocab = int(read_config(source).get("vocab_size") or 0)
        layout = released_layout(tokenizer, vocab, source, slots)
        logging.info(
            "load: %s has no %s: %d text tokens (the tokenizer's), %d image codes, "
            "<boi>/<eoi>/<unconditional> = %d/%d/%d",
            source, run_layout.VOCAB, layout.text_vocab_size, layout.num_image_codes,
            layout.boi_id, layout.eoi_id, layout.unconditional_id,
        )  # fmt: skip
    check_tokenizer(tokenizer, layout, source)
    dtype = jnp.float32 if dtype is None else sampling_dtype(dtype)
    logging.info("load: the model in %s (%s)", source, jnp.dtype(dtype).name)
    model = load_hf(source, dtype=dtype, mesh=mesh)
    return LoadedModel(model, layout, tokenizer, find_vqgan(hf_dir, path, vqgan), None, source)
