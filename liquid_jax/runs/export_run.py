"""``liquid-jax export``: a run directory -> an HF transformers directory + a taming VQGAN.

The source is either a training workdir (the model of its latest checkpoint, its
tokenizer and vocabulary layout, and the VQGAN named in ``run_info.json``) or an
HF-format Liquid directory (re-written through ``load_hf``/``save_hf``).
"""

from __future__ import annotations

import importlib.util

from absl import logging

from liquid_jax import fileio
from liquid_jax.export.hf import save_hf
from liquid_jax.export.hf_import import export_hf
from liquid_jax.export.vqgan import load_vqgan, save_vqgan
from liquid_jax.runs import layout as run_layout
from liquid_jax.runs.load import load_model


def vqgan_formats() -> tuple[str, ...]:
    """taming's ``.ckpt`` needs torch (an optional extra); safetensors always works."""
    has_torch = importlib.util.find_spec("torch") is not None
    return ("ckpt", "safetensors") if has_torch else ("safetensors",)


def export_run(workdir: str, out_dir: str, step: int | None = None) -> str:
    """Writes ``out_dir`` (loadable by ``AutoModelForCausalLM.from_pretrained``) with the
    tokenizer and ``liquid_vocab.json``; the VQGAN, when known, goes to ``out_dir/vqgan``."""
    if not run_layout.is_train_workdir(workdir):
        return export_hf(workdir, out_dir)
    loaded = load_model(workdir, step=step)
    save_hf(loaded.model, out_dir, tokenizer=fileio.join(workdir, run_layout.TOKENIZER))
    loaded.layout.save(out_dir)
    if loaded.vqgan:
        vqgan_dir = fileio.join(out_dir, run_layout.VQGAN)
        save_vqgan(load_vqgan(loaded.vqgan), vqgan_dir, formats=vqgan_formats())
    else:
        logging.warning("export: %s names no VQGAN (config.model.vqgan); exported the LLM only",
                        workdir)  # fmt: skip
    logging.info("export: step %d of %s -> %s", loaded.step, workdir, out_dir)
    return out_dir
