"""The Liquid stage's learning curve: T2I and I2T accuracy at each kept checkpoint.

The Liquid stage keeps a checkpoint every fifth of its steps; this scores each on the
same small set of held-out single-shape test captions (T2I with CFG, judged by the probe)
and test images (greedy I2T, parsed), so the report shows the model learning to draw
and to read, next to its loss curves. Every checkpoint has the same shapes, so the
sampler compiles once.

    rows, sampler = learning_curve(config, paths, probe, prompts, images, truth)
    rows: [{"step": 84, "t2i_color_acc": ..., "i2t_color_acc": ...}, ...]
"""

from __future__ import annotations

import json
import os
import time

from absl import logging

from liquid_jax.evals.scoring import score_captions, score_images
from liquid_jax.export import load_vqgan
from liquid_jax.runs.checkpoints import complete_steps
from liquid_jax.runs.trained_model import load_trained_model
from liquid_jax.sample.api import Sampler


def learning_curve(config, paths, probe, prompts, images, truth):
    """Scores every kept Liquid checkpoint; writes ``report/learning_curve.json``.

    prompts: the captions of ``images`` (uint8[N, S, S, 3]); truth: their scenes in
    canonical form (``scene_attributes``), what T2I samples and I2T captions must show.
    Returns (rows, the sampler with the last checkpoint's weights, None without any): the
    final model's, whose evaluation then reuses the loops compiled here.
    """
    e, rows, sampler = config.eval, [], None
    for step in complete_steps(paths.liquid):
        t = time.perf_counter()
        model, layout, tokenizer, _ = load_trained_model(paths.liquid, step=step)
        if sampler is None:
            vqgan = load_vqgan(paths.vqgan_taming)
            sampler = Sampler(model, layout, tokenizer, vqgan, batch_size=e.sample_batch)
        else:  # same shapes: the loops compiled for the first checkpoint serve them all
            sampler.decoder.set_weights(model)
        result = sampler.t2i(prompts, cfg_scale=e.cfg_scale, temperature=e.temperature,
                             top_k=e.top_k, top_p=e.top_p, cfg_min_p=e.cfg_min_p,
                             seed=config.seed)  # fmt: skip
        t2i = score_images(probe.predict(result.images), truth)
        captions = sampler.i2t(list(images), max_new_tokens=e.max_caption_tokens)
        i2t = score_captions(captions, truth)
        row = {"step": int(step)}
        row.update({f"t2i_{k}_acc": v for k, v in t2i.items()})
        row.update({f"i2t_{k}_acc": v for k, v in i2t.items() if k != "parsed"})
        rows.append(row)
        logging.info("learning curve, step %d (%.0fs): T2I %s, I2T %s", step,
                     time.perf_counter() - t, {k: round(v, 3) for k, v in t2i.items()},
                     {k: round(v, 3) for k, v in i2t.items()})  # fmt: skip
    with open(os.path.join(paths.report, "learning_curve.json"), "w") as f:
        json.dump(rows, f, indent=1)
    return rows, sampler


def plot_curve(rows: list[dict], out_dir: str) -> str | None:
    """``learning_curve.png``: T2I (CFG) and I2T accuracy per attribute against step."""
    if not rows:
        return None
    # matplotlib (about 0.5 s to import) only for the report's plots.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # after use("Agg"): no display needed

    steps = [r["step"] for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
    for ax, task, title in ((axes[0], "t2i", "T2I with CFG (probe)"),
                            (axes[1], "i2t", "I2T (parsed captions)")):  # fmt: skip
        for attr in ("color", "shape", "size", "position"):
            ax.plot(steps, [r[f"{task}_{attr}_acc"] for r in rows], "o-", label=attr)
        ax.set(title=title, xlabel="Liquid step", ylim=(0, 1.02))
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("accuracy on held-out test items")
    axes[1].legend(loc="lower right")
    fig.tight_layout()
    path = os.path.join(out_dir, "learning_curve.png")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
