"""``liquid-jax export``: a run directory -> an HF transformers directory + a taming VQGAN.

The source is either a training workdir (the model of its latest checkpoint, its
tokenizer and vocabulary layout, and the VQGAN named in ``run_info.json``) or an
HF-format Liquid directory (re-written through ``load_hf``/``save_hf``).
"""

from __future__ import annotations

import importlib.util

from absl import logging

from liquid_jax import fileio
from liquid_jax.errors import ConfigError
from liquid_jax.export.hf import save_hf
from liquid_jax.export.hf_import import export_hf
from liquid_jax.export.vqgan import load_vqgan, save_vqgan
from liquid_jax.runs import layout as run_layout
from liquid_jax.runs.load import load_model

# VQGANConfig fields (> 0 when set) a stock taming / Chameleon encoder or decoder does not
# have, and what each changes; vqgan.yaml keeps them in its private liquid_jax section.
NONSTOCK = {
    "encode_tile": "each {v}x{v} tile of codes is encoded from its own pixels alone",
    "decode_tile": "each {v}x{v} tile of codes is decoded on its own",
}
NONSTOCK_README = "README.md"


def nonstock_settings(config) -> dict[str, int]:
    """The settings of ``config`` (a ``VQGANConfig``) in ``NONSTOCK`` that are on."""
    return {k: getattr(config, k) for k in NONSTOCK if getattr(config, k, 0)}


def _describe(nonstock: dict[str, int]) -> str:
    return "; ".join(f"{k}={v} ({NONSTOCK[k].format(v=v)})" for k, v in nonstock.items())


def _nonstock_readme(nonstock: dict[str, int]) -> str:
    lines = ["# This VQGAN is not a stock taming / Chameleon tokenizer", "",
             "It was trained and exported with settings that stock PyTorch encoders "
             "(taming's `VQModel`, transformers' `ChameleonVQVAE`) do not have. Loaded "
             "there from `vqgan.ckpt` / `vqgan.safetensors`, it gives other codes (encoder) "
             "or other pixels (decoder) than the model was trained with:", ""]  # fmt: skip
    lines += [f"- `{k}: {v}`: {NONSTOCK[k].format(v=v)}" for k, v in nonstock.items()]
    lines += [
        "",
        "`liquid_jax.export.load_vqgan` reads these from the `liquid_jax` section of "
        "`vqgan.yaml` and reproduces them; so does `liquid-jax sample --vqgan`.",
        "",
    ]
    return "\n".join(lines)


def vqgan_formats() -> tuple[str, ...]:
    """taming's ``.ckpt`` needs torch (an optional extra); safetensors always works."""
    has_torch = importlib.util.find_spec("torch") is not None
    return ("ckpt", "safetensors") if has_torch else ("safetensors",)


def export_run(
    workdir: str, out_dir: str, step: int | None = None, allow_nonstock_vqgan: bool = False
) -> str:
    """Writes ``out_dir`` (loadable by ``AutoModelForCausalLM.from_pretrained``) with the
    tokenizer and ``liquid_vocab.json``; the VQGAN, when known, goes to ``out_dir/vqgan``.

    A VQGAN with settings stock PyTorch encoders do not have (``nonstock_settings``) is
    refused before anything is written, unless ``allow_nonstock_vqgan``: then
    ``out_dir/vqgan/README.md`` says what a stock encoder would get wrong.
    """
    if not run_layout.is_train_workdir(workdir):
        return export_hf(workdir, out_dir)
    loaded = load_model(workdir, step=step)
    vqgan = load_vqgan(loaded.vqgan) if loaded.vqgan else None
    nonstock = nonstock_settings(vqgan.config) if vqgan is not None else {}
    if nonstock and not allow_nonstock_vqgan:
        raise ConfigError(
            f"export: the VQGAN {loaded.vqgan} has {_describe(nonstock)}; stock PyTorch "
            "encoders (taming VQModel, transformers' ChameleonVQVAE) encode the whole image "
            "and give other codes. --allow_nonstock_vqgan exports it anyway, documented "
            "in the export's vqgan/README.md"
        )
    save_hf(loaded.model, out_dir, tokenizer=fileio.join(workdir, run_layout.TOKENIZER))
    loaded.layout.save(out_dir)
    if vqgan is not None:
        vqgan_dir = fileio.join(out_dir, run_layout.VQGAN)
        save_vqgan(vqgan, vqgan_dir, formats=vqgan_formats())
        if nonstock:
            fileio.write_text(fileio.join(vqgan_dir, NONSTOCK_README), _nonstock_readme(nonstock))
    else:
        logging.warning("export: %s names no VQGAN (config.model.vqgan); exported the LLM only",
                        workdir)  # fmt: skip
    logging.info("export: step %d of %s -> %s", loaded.step, workdir, out_dir)
    return out_dir
