"""Finding what sampling needs in a run directory: model, vocabulary, tokenizer, VQGAN.

A model comes from a training workdir (the latest checkpoint's model, with the run's
tokenizer, ``liquid_vocab.json`` and the VQGAN of ``run_info.json``) or from an HF-format
Liquid directory (``config.json`` + weights + tokenizer + ``liquid_vocab.json``, as
``import-hf`` / ``export`` write): ``--hf_dir``, or the workdir itself when it is one.

The VQGAN is a taming checkpoint (directory, yaml, ``.ckpt`` or ``.safetensors``):
``vqgan=``, else a ``vqgan/`` folder or ``vqgan.yaml`` in the HF directory or workdir.
"""

from __future__ import annotations

import os

import jax.numpy as jnp
from absl import logging

from liquid_jax.data.tokenizer import TextTokenizer
from liquid_jax.data.tokenizer_files import load_tokenizer
from liquid_jax.data.vocab import VOCAB_FILE, VocabLayout
from liquid_jax.sample.api import Sampler

CHECKPOINT_DIR = "checkpoints"
VQGAN_YAML = "vqgan.yaml"


class NoModelError(FileNotFoundError):
    """No HF export or usable checkpoint where a model was expected."""


def _is_hf_liquid_dir(path: str) -> bool:
    return all(os.path.isfile(os.path.join(path, f)) for f in ("config.json", VOCAB_FILE))


def find_hf_dir(workdir: str | None, hf_dir: str | None = None) -> str:
    """The HF-format Liquid directory to load, or ``NoModelError`` saying what is missing."""
    if hf_dir:
        if not _is_hf_liquid_dir(hf_dir):
            raise NoModelError(
                f"{hf_dir}: not an HF-format Liquid directory (needs config.json and "
                f"{VOCAB_FILE}; run liquid-jax import-hf to make one)"
            )
        return hf_dir
    if not workdir:
        raise NoModelError("sample: pass --workdir or --hf_dir")
    if _is_hf_liquid_dir(workdir):
        return workdir
    raise NoModelError(
        f"{workdir}: no HF export / checkpoint found (expected config.json and {VOCAB_FILE} "
        f"there, or {CHECKPOINT_DIR}/); pass --hf_dir"
    )


def find_vqgan(hf_dir: str | None, workdir: str | None, vqgan: str | None = None) -> str | None:
    """The VQGAN checkpoint path: ``vqgan`` if given, else one found next to the model."""
    if vqgan:
        if not os.path.exists(vqgan):
            raise FileNotFoundError(f"vqgan: {vqgan} does not exist")
        return vqgan
    for base in (hf_dir, workdir):
        if not base:
            continue
        for candidate in (os.path.join(base, "vqgan"), base):
            if os.path.isfile(os.path.join(candidate, VQGAN_YAML)):
                return candidate
    return None


def _check_tokenizer(tokenizer: TextTokenizer, layout: VocabLayout, where: str) -> None:
    if tokenizer.vocab_size > layout.text_vocab_size:
        raise ValueError(
            f"{where}: the tokenizer has {tokenizer.vocab_size} tokens but {VOCAB_FILE} "
            f"reserves only {layout.text_vocab_size} text ids"
        )
    for name in ("boi_id", "eoi_id", "unconditional_id"):
        if getattr(tokenizer, name) != getattr(layout, name):
            raise ValueError(
                f"{where}: the tokenizer's {name}={getattr(tokenizer, name)} differs from "
                f"{VOCAB_FILE}'s {getattr(layout, name)}"
            )


def load_for_sampling(
    workdir: str | None = None,
    *,
    hf_dir: str | None = None,
    vqgan: str | None = None,
    mesh=None,
    dtype=jnp.float32,
    **sampler_kwargs,
) -> Sampler:
    """A ``Sampler`` for the model in ``hf_dir`` (or ``workdir``) and its VQGAN.

    Raises ``NoModelError`` when there is neither a train workdir nor an HF export,
    ``FileNotFoundError`` for a missing ``vqgan`` path. ``sampler_kwargs`` go to
    ``Sampler`` (``context``, ``size_prefix``, ``batch_size``).
    """
    from liquid_jax.export import load_hf, load_vqgan
    from liquid_jax.train.trained_model import is_train_workdir, load_trained_model, read_run_info

    if not hf_dir and workdir and is_train_workdir(workdir):
        model, layout, tokenizer, step = load_trained_model(workdir, mesh=mesh)
        logging.info("sample: the model of %s at step %d", workdir, step)
        vqgan = vqgan or read_run_info(workdir).get("vqgan") or None
        vqgan_path = find_vqgan(None, workdir, vqgan)
    else:
        path = find_hf_dir(workdir, hf_dir)
        vqgan_path = find_vqgan(hf_dir, workdir, vqgan)
        layout = VocabLayout.load(path)
        tokenizer = load_tokenizer(path)
        _check_tokenizer(tokenizer, layout, path)
        logging.info("sample: loading the model from %s", path)
        model = load_hf(path, dtype=dtype, mesh=mesh)
    image_model = None
    if vqgan_path is not None:
        image_model = load_vqgan(vqgan_path, mesh=mesh)
    return Sampler(model, layout, tokenizer, image_model, mesh=mesh, **sampler_kwargs)
