"""One way to load a model from a run directory: a train workdir or an HF directory.

    loaded = load_model("runs/liquid")            # the newest checkpoint of a train run
    loaded = load_model("exports/liquid_hf")      # an HF-format Liquid directory

A train workdir gives the newest checkpoint's model (never the optimizer's moments), its
``tokenizer/``, ``liquid_vocab.json`` and the VQGAN named in ``run_info.json``; an HF
directory (``config.json`` + safetensors + tokenizer + ``liquid_vocab.json``, as
``import-hf`` and ``export`` write) gives its weights and the ``vqgan/`` beside them.
Paths may be local or URLs (``gs://``).
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
from absl import logging

from liquid_jax import fileio
from liquid_jax.data.tokenizers.base import TextTokenizer
from liquid_jax.data.tokenizers.load import load_tokenizer
from liquid_jax.data.vocab import VocabLayout
from liquid_jax.errors import InputError, PathNotFoundError
from liquid_jax.export.hf import load_hf
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


def find_hf_dir(workdir: str | None, hf_dir: str | None = None) -> str:
    """The HF-format Liquid directory to load, or ``NoModelError`` saying what is missing."""
    if hf_dir:
        if not run_layout.is_hf_liquid_dir(hf_dir):
            raise NoModelError(
                f"{hf_dir}: not an HF-format Liquid directory (needs {run_layout.HF_CONFIG} "
                f"and {run_layout.VOCAB}; run liquid-jax import-hf to make one)"
            )
        return hf_dir
    if not workdir:
        raise NoModelError("pass --workdir or --hf_dir")
    if run_layout.is_hf_liquid_dir(workdir):
        return workdir
    raise NoModelError(
        f"{workdir}: no HF export / checkpoint found (expected {run_layout.HF_CONFIG} and "
        f"{run_layout.VOCAB} there, or {run_layout.RUN_INFO} and {run_layout.CHECKPOINTS}/); "
        "pass --hf_dir"
    )


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
    dtype=jnp.float32,
) -> LoadedModel:
    """The model in ``hf_dir``, else in ``path`` (a train workdir or an HF directory).

    ``step`` picks a checkpoint of a train workdir (default: the newest); ``vqgan``
    overrides the VQGAN found beside the model. Raises ``NoModelError`` when there is
    neither a train workdir nor an HF directory, ``FileNotFoundError`` for a missing
    ``vqgan``.
    """
    if not hf_dir and path and run_layout.is_train_workdir(path):
        model, layout, tokenizer, step = load_trained_model(path, step=step, mesh=mesh)
        logging.info("load: the model of %s at step %d", path, step)
        vqgan = vqgan or read_run_info(path).get("vqgan") or None
        return LoadedModel(model, layout, tokenizer, find_vqgan(None, path, vqgan), step, path)
    source = find_hf_dir(path, hf_dir)
    layout = VocabLayout.load(source)
    tokenizer = load_tokenizer(source)
    check_tokenizer(tokenizer, layout, source)
    logging.info("load: the model in %s", source)
    model = load_hf(source, dtype=dtype, mesh=mesh)
    return LoadedModel(model, layout, tokenizer, find_vqgan(hf_dir, path, vqgan), None, source)
