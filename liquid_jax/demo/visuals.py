"""The report's pictures: image grids (PNG, pixels scaled up) and loss curves (matplotlib
with the Agg back-end, so no display is needed)."""

from __future__ import annotations

import json
import os

import numpy as np

from liquid_jax.data.images import to_uint8
from liquid_jax.evals.grid import image_grid, save_png
from liquid_jax.models.vqgan_apply import decode_codes, encode_images
from liquid_jax.runs.layout import METRICS

SCALE = 4  # 32 px images are hard to see at their own size


def reconstruction_grid(vqgan, images_u8: np.ndarray, out_dir: str) -> str:
    """Top row: test images; bottom row: the VQGAN's reconstructions."""
    x = np.asarray(images_u8, np.float32) / 127.5 - 1.0
    recon = to_uint8(decode_codes(vqgan, encode_images(vqgan, x)))
    grid = image_grid(np.concatenate([images_u8, recon]), cols=len(images_u8))
    return save_png(grid, os.path.join(out_dir, "reconstruction.png"), SCALE)


def rows_grid(rows: list[np.ndarray], path: str) -> str:
    """Each entry of ``rows`` (uint8[N, H, W, 3], same N) becomes one row of the grid."""
    n = len(rows[0])
    return save_png(image_grid(np.concatenate(rows), cols=n), path, SCALE)


def read_metrics(workdir: str) -> list[dict]:
    path = os.path.join(workdir, METRICS)
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def _series(rows: list[dict], key: str) -> tuple[list[int], list[float]]:
    pts = [(r["step"], r[key]) for r in rows if key in r and np.isfinite(r[key])]
    return [p[0] for p in pts], [p[1] for p in pts]


def loss_curves(base_lm: str, liquid: str, vqgan: str, out_dir: str) -> list[str]:
    """``llm_losses.png`` (Liquid per modality + the base LM) and ``vqgan_curves.png``."""
    # matplotlib (about 0.5 s to import) only for the report's plots.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # after use("Agg"): no display needed

    written = []
    fig, ax = plt.subplots(figsize=(7, 4))
    liquid_rows, base_rows = read_metrics(liquid), read_metrics(base_lm)
    for key, label in (("loss_text", "text"), ("loss_t2i", "T2I (image codes)"),
                       ("loss_i2t", "I2T (captions)")):  # fmt: skip
        ax.plot(*_series(liquid_rows, key), label=f"Liquid: {label}")
    ax.plot(*_series(base_rows, "loss"), "--", color="gray", label="base LM: text")
    ax.set(xlabel="step", ylabel="next-token loss (nats)", yscale="log",
           title="LLM training loss per modality")  # fmt: skip
    ax.legend()
    fig.tight_layout()
    written.append(os.path.join(out_dir, "llm_losses.png"))
    fig.savefig(written[-1], dpi=100)
    plt.close(fig)

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.5))
    vq_rows = read_metrics(vqgan)
    a1.plot(*_series(vq_rows, "loss"))
    a1.set(xlabel="step", ylabel="loss", yscale="log", title="VQGAN training loss")
    a2.plot(*_series(vq_rows, "psnr"), label="train batch")
    a2.plot(*_series(vq_rows, "val_psnr"), "o", label="validation")
    a2.set(xlabel="step", ylabel="PSNR (dB)", title="VQGAN reconstruction")
    a2.legend()
    fig.tight_layout()
    written.append(os.path.join(out_dir, "vqgan_curves.png"))
    fig.savefig(written[-1], dpi=100)
    plt.close(fig)
    return written
