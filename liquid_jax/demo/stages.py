"""The demo's building stages, each a thin call into the package's own commands.

Every stage reads the demo config and the ``Paths`` of one demo workdir and returns a
small JSON-able summary. They call exactly what a user would run by hand:
``build_shapes_world``, ``train_vqgan``, ``extract_codes`` (encode-images), ``train``,
``export_run`` (export) and ``import_hf`` (import-hf).
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
from absl import logging

from liquid_jax.data.shapes.sample import STYLE_DEFAULTS
from liquid_jax.data.shapes.world import (
    TEXT_DATASET,
    build_shapes_world,
    dataset_dir,
    load_shapes_world,
)
from liquid_jax.demo import visuals
from liquid_jax.encode.images import extract_codes
from liquid_jax.export import import_hf
from liquid_jax.export.vqgan import save_vqgan
from liquid_jax.runs.export_run import export_run
from liquid_jax.runs.layout import CODES
from liquid_jax.runs.vqgan import load_vqgan_from_workdir
from liquid_jax.train.loop import train
from liquid_jax.train.vqgan_loop import evaluate, train_vqgan

CURVE_POINTS = 5  # Liquid checkpoints kept for the learning curve


class Paths:
    """Where each stage keeps its outputs under the demo workdir ``root``."""

    def __init__(self, root: str):
        def sub(name: str) -> str:
            return os.path.join(root, name)

        self.root = root
        self.world = sub("world")
        self.vqgan = sub("vqgan")  # train-vqgan workdir
        self.vqgan_taming = sub("vqgan_taming")  # its VQGAN as taming files
        self.codes = sub("codes")  # encode-images workdir
        self.base_lm = sub("base_lm")  # train workdir of the text-only LM
        self.base_hf = sub("base_hf")  # its HF export: the "Gemma" stand-in
        self.liquid_init = sub("liquid_init")  # import-hf output
        self.liquid = sub("liquid")  # train workdir of the Liquid stage
        self.export = sub("export")  # HF + taming hand-off
        self.report = sub("report")  # plots, grids, samples

    def text_spec(self, split: str) -> str:
        return f"tfds:{dataset_dir(self.world, TEXT_DATASET)}?split={split}"

    def code_spec(self, split: str) -> str:
        return f"codes:{os.path.join(self.codes, CODES, split)}"


def world_style(config) -> dict:
    """The world's style keys (``shapes.sample.STYLE_DEFAULTS``) as the config sets them."""
    return {k: config.world[k] for k in STYLE_DEFAULTS if k in config.world}


def build_world(config, paths: Paths) -> dict:
    w = config.world
    build_shapes_world(paths.world, w.num_train, w.num_val, w.num_test, w.image_size, w.seed,
                       **world_style(config))  # fmt: skip
    logging.info("shapes world: %d / %d / %d images (+ as many text documents) in %s",
                 w.num_train, w.num_val, w.num_test, paths.world)  # fmt: skip
    return {"num_train": w.num_train, "num_val": w.num_val, "num_test": w.num_test}


def _vqgan_config(config):
    vq = config.vqgan.copy_and_resolve_references()
    # The VQGAN generates the same train images the world holds (same seed and size).
    vq.data.source = "shapes"
    vq.data.seed = config.world.seed
    vq.data.image_size = config.world.image_size
    vq.data.update(world_style(config))
    vq.model.resolution = config.world.image_size
    return vq


def test_images(config, paths: Paths, limit: int | None = None) -> tuple[np.ndarray, list]:
    """uint8[N, S, S, 3] test images and their records (caption, attributes)."""
    source = load_shapes_world(paths.world, "test")
    n = len(source) if limit is None else min(limit, len(source))
    records = source.__getitems__(list(range(n)))
    return np.stack([r["image"] for r in records]), records


def train_tokenizer_vqgan(config, paths: Paths) -> dict:
    """Trains the VQGAN, scores reconstructions of the test split, writes it as taming."""
    vq = _vqgan_config(config)
    train_vqgan(vq, paths.vqgan)
    model = load_vqgan_from_workdir(paths.vqgan, vq.model)
    images, _ = test_images(config, paths)
    metrics, _ = evaluate(model, images, vq.model.n_embed)
    logging.info("vqgan test reconstruction: PSNR %.2f dB, SSIM %.3f", metrics["psnr"],
                 metrics["ssim"])  # fmt: skip
    # The codes, the sampler and the export all read this taming-format copy, exactly as
    # they would read Chameleon's released tokenizer.
    save_vqgan(model, paths.vqgan_taming, formats=("safetensors",))
    visuals.reconstruction_grid(model, images[: config.eval.grid_rows], paths.report)
    return {f"test_{k}": v for k, v in metrics.items()}


def extract(config, paths: Paths) -> dict:
    enc = config.encode.copy_and_resolve_references()
    w = config.world
    enc.source = "shapes_world"
    enc.splits = "train,validation,test"
    enc.shapes_world.update(dir=paths.world, num_train=w.num_train, num_val=w.num_val,
                            num_test=w.num_test, image_size=w.image_size, seed=w.seed,
                            **world_style(config))  # fmt: skip
    enc.image_size = w.image_size
    enc.vqgan.path, enc.vqgan.workdir = paths.vqgan_taming, ""
    summary = extract_codes(enc, paths.codes)
    return {split: int(s["encoded"]) for split, s in summary.items()}


def _llm_config(section, paths: Paths):
    c = section.copy_and_resolve_references()
    c.data.text_sources = (paths.text_spec("train"),)
    return c


def train_base(config, paths: Paths) -> dict:
    """The text-only base LM, trained from scratch and saved in HF format."""
    c = _llm_config(config.base, paths)
    c.tokenizer.train_corpus = paths.text_spec("train")
    c.data.image_text_sources = ()
    last = train(c, paths.base_lm)
    export_run(paths.base_lm, paths.base_hf)
    logging.info("base LM: final loss %.4f, HF model in %s", last.get("loss", float("nan")),
                 paths.base_hf)  # fmt: skip
    return {"final_loss": last.get("loss")}


def import_base(config, paths: Paths) -> dict:
    """``liquid-jax import-hf --image_codes N``: vocabulary + N mean-resized code rows."""
    n = int(config.vqgan.model.n_embed)
    layout = import_hf(paths.base_hf, paths.liquid_init, image_codes=n)
    logging.info("import-hf: %d text tokens + %d image codes -> %s", layout.text_vocab_size,
                 n, paths.liquid_init)  # fmt: skip
    return dataclasses.asdict(layout)


def train_liquid(config, paths: Paths) -> dict:
    """Liquid training from the imported base on text + T2I + I2T."""
    c = _llm_config(config.liquid, paths)
    c.model.init_from = paths.liquid_init
    c.model.vqgan = paths.vqgan_taming
    c.data.image_text_sources = (paths.code_spec("train"),)
    c.data.num_image_codes = int(config.vqgan.model.n_embed)
    c.data.downsample = 2 ** (len(config.vqgan.model.ch_mult) - 1)
    # A checkpoint every fifth of the steps, all kept: the eval stage's learning curve.
    c.checkpoint_every_steps = max(1, c.total_steps // CURVE_POINTS)
    c.keep_checkpoints = CURVE_POINTS
    last = train(c, paths.liquid)
    return {k: last.get(k) for k in ("loss", "loss_text", "loss_t2i", "loss_i2t")}


def export_final(config, paths: Paths) -> dict:
    """``liquid-jax export``: HF transformers model + tokenizer, VQGAN as taming files."""
    # The demo's VQGAN encodes each 4x4 patch alone (configs/demo.py): documented in
    # the export's vqgan/README.md.
    export_run(paths.liquid, paths.export, allow_nonstock_vqgan=True)
    files = sorted(os.listdir(paths.export)) + [
        f"vqgan/{f}" for f in sorted(os.listdir(os.path.join(paths.export, "vqgan")))
    ]
    logging.info("export: %s", ", ".join(files))
    return {"files": files}
