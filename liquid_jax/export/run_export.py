"""``liquid-jax export``: a run directory -> an HF transformers directory + a taming VQGAN.

The source is either a training workdir (the model of its latest checkpoint, its
tokenizer and vocabulary layout, and the VQGAN named in ``run_info.json``) or an
HF-format Liquid directory (re-written through ``load_hf``/``save_hf``).
"""

from __future__ import annotations

import importlib.util
import os

from absl import logging

from liquid_jax.export.hf import save_hf
from liquid_jax.export.hf_import import export_hf
from liquid_jax.export.vqgan import load_vqgan, save_vqgan


def vqgan_formats() -> tuple[str, ...]:
    """taming's ``.ckpt`` needs torch (an optional extra); safetensors always works."""
    has_torch = importlib.util.find_spec("torch") is not None
    return ("ckpt", "safetensors") if has_torch else ("safetensors",)


def export_run(workdir: str, out_dir: str, step: int | None = None) -> str:
    """Writes ``out_dir`` (loadable by ``AutoModelForCausalLM.from_pretrained``) with the
    tokenizer and ``liquid_vocab.json``; the VQGAN, when known, goes to ``out_dir/vqgan``."""
    from liquid_jax.train.trained_model import is_train_workdir, load_trained_model, read_run_info

    if not is_train_workdir(workdir):
        return export_hf(workdir, out_dir)
    model, layout, _, step = load_trained_model(workdir, step)
    save_hf(model, out_dir, tokenizer=os.path.join(workdir, "tokenizer"))
    layout.save(out_dir)
    vqgan = read_run_info(workdir).get("vqgan", "")
    if vqgan:
        save_vqgan(load_vqgan(vqgan), os.path.join(out_dir, "vqgan"), formats=vqgan_formats())
    else:
        logging.warning("export: %s names no VQGAN (config.model.vqgan); exported the LLM only",
                        workdir)  # fmt: skip
    logging.info("export: step %d of %s -> %s", step, workdir, out_dir)
    return out_dir
