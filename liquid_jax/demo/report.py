"""``report.md`` and ``metrics.json``: every number of the demo, its targets and pictures."""

from __future__ import annotations

import json
import math
import os
import time

from absl import logging


def _at_least(key: str, bound: float):
    return lambda m: m[key] >= bound


# (metric, label, target text, check) in the order the table shows them. Accuracies are
# over single-shape test scenes; two-shape scenes follow as a secondary measure.
TARGETS = (
    ("wall_s", "demo wall time (s)", "<= 900", lambda m: m["wall_s"] <= 900),
    ("vqgan_psnr_db", "VQGAN test PSNR (dB)", "", None),
    ("probe_acc", "probe accuracy on real test images", ">= 0.98", _at_least("probe_acc", 0.98)),
    *[(f"probe_recon_{a}_acc", f"probe on VQGAN reconstructions: {a} (T2I ceiling)",
       ">= 0.95", _at_least(f"probe_recon_{a}_acc", 0.95))
      for a in ("color", "shape", "size", "position")],
    ("probe_blur_all_acc", "probe on real test images blurred by 1 px (its robustness)", "",
     None),
    ("t2i_color_acc", "T2I colour accuracy, CFG", ">= 0.90", _at_least("t2i_color_acc", 0.9)),
    ("t2i_shape_acc", "T2I shape accuracy, CFG", ">= 0.80", _at_least("t2i_shape_acc", 0.8)),
    ("t2i_size_acc", "T2I size accuracy, CFG", ">= 0.90", _at_least("t2i_size_acc", 0.9)),
    ("t2i_position_acc", "T2I position accuracy, CFG", ">= 0.90",
     _at_least("t2i_position_acc", 0.9)),
    ("t2i_mean_acc", "T2I mean of the four, CFG", ">= no CFG + 0.05",
     lambda m: m["t2i_mean_acc"] >= m["t2i_mean_acc_nocfg"] + 0.05),
    ("t2i_mean_acc_nocfg", "T2I mean of the four, no CFG", "", None),
    *[(f"t2i_{a}_acc_nocfg", f"T2I {a} accuracy, no CFG", "", None)
      for a in ("color", "shape", "size", "position")],
    ("t2i_prompts_seen_in_train_frac", "test captions that occur in training", "", None),
    ("t2i_caption_gain_nats", "caption use: code loss the true caption saves (nats/image)", "",
     None),
    *[(f"t2i_caption_{a}_nats", f"caption use: ... by its {a} words", "", None)
      for a in ("color", "shape", "size", "position")],
    ("i2t_color_acc", "I2T caption colour accuracy", ">= 0.90", _at_least("i2t_color_acc", 0.9)),
    ("i2t_shape_acc", "I2T caption shape accuracy", ">= 0.90", _at_least("i2t_shape_acc", 0.9)),
    ("i2t_size_acc", "I2T caption size accuracy", "", None),
    ("i2t_position_acc", "I2T caption position accuracy", ">= 0.90",
     _at_least("i2t_position_acc", 0.9)),
    *[(f"t2i_pair_{a}_acc", f"two shapes: T2I {a} accuracy, CFG", "", None)
      for a in ("color", "shape", "size", "position")],
    *[(f"i2t_pair_{a}_acc", f"two shapes: I2T {a} accuracy", "", None)
      for a in ("color", "shape", "size", "position")],
    ("text_ppl_base", "text perplexity, base LM", "", None),
    ("text_ppl_liquid", "text perplexity, after Liquid", "<= 1.1 x base",
     lambda m: m["text_ppl_liquid"] <= 1.1 * m["text_ppl_base"]),
)  # fmt: skip


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def metrics_table(metrics: dict) -> str:
    lines = ["| metric | value | target | met |", "| --- | --- | --- | --- |"]
    for key, label, target, check in TARGETS:
        if key not in metrics:
            continue
        met = "" if check is None else ("yes" if check(metrics) else "**no**")
        lines.append(f"| {label} (`{key}`) | {_fmt(metrics[key])} | {target} | {met} |")
    return "\n".join(lines)


def write_metrics(metrics: dict, path: str) -> str:
    bad = [k for k, v in metrics.items() if isinstance(v, float) and not math.isfinite(v)]
    if bad:
        # Still written (json allows NaN through Python), but said loudly.

        logging.warning("metrics.json: non-finite values for %s", bad)
    with open(path, "w") as f:
        json.dump(metrics, f, indent=2, sort_keys=True)
    return path


def write_report(root: str, metrics: dict, stage_walls: dict, titles: dict, report_dir: str):
    """Writes ``root/report.md`` (pictures referenced from ``report_dir``)."""
    rel = os.path.relpath(report_dir, root)
    samples_path = os.path.join(report_dir, "samples.json")
    samples = {}
    if os.path.exists(samples_path):
        with open(samples_path) as f:
            samples = json.load(f)
    prompts = samples.get("t2i_prompts", [])
    i2t = samples.get("i2t", [])
    k = min(8, len(prompts))
    out = [
        "# liquid-jax demo report",
        "",
        f"Written {time.strftime('%Y-%m-%d %H:%M:%S')}. The whole Liquid recipe on the "
        "synthetic shapes world: VQGAN -> codes -> text-only base LM (HF) -> import-hf with "
        "mean resizing -> Liquid on text + T2I + I2T -> evals -> HF / taming export.",
        "",
        "## Metrics",
        "",
        metrics_table(metrics),
        "",
        "Accuracies are fractions, over single-shape test scenes unless the label says two "
        "shapes. Test scenes are combinations of colour, kind, size and position that "
        "training never shows. T2I images are judged by the attribute probe (a small "
        "CNN trained on train-split ground-truth images; its own accuracy on real test "
        "images is `probe_acc`). Colour / shape / size count per stated shape at its "
        "stated position; position counts per image (exactly the stated positions are "
        "occupied). Caption use: the Liquid model's loss on the codes of test images (nats "
        "per image, teacher-forced) with another image's caption minus with the true one, "
        "and what swapping one class of words (colour, shape, size, position) for others "
        "of its class adds; about 0 means that word class is ignored. Every number is in "
        "`metrics.json`.",
        "",
        "## Wall time per stage",
        "",
        "| stage | wall (s) |",
        "| --- | --- |",
        *[f"| {titles.get(n, n)} | {w:.1f} |" for n, w in stage_walls.items()],
        f"| **total** | **{sum(stage_walls.values()):.1f}** |",
        "",
        "## Text to image (held-out test captions)",
        "",
        "Columns are prompts 1..N; rows: the real test image of that caption, a sample "
        f"with CFG (scale {metrics.get('t2i_cfg_scale')}), a sample without CFG.",
        "",
        f"![t2i]({rel}/t2i_grid.png)",
        "",
        *[f"{i + 1}. {p}" for i, p in enumerate(prompts[:k])],
        "",
        "Two-shape scenes (secondary), the same rows:",
        "",
        f"![t2i two shapes]({rel}/t2i_pair_grid.png)",
        "",
        *[f"{i + 1}. {p}" for i, p in enumerate(samples.get("t2i_pair_prompts", [])[:k])],
        "",
        "## Image to text (held-out test images)",
        "",
        f"![i2t]({rel}/i2t_grid.png)",
        "",
        "| # | generated caption | ground truth |",
        "| --- | --- | --- |",
        *[f"| {i + 1} | {s['generated']} | {s['truth']} |" for i, s in enumerate(i2t[:k])],
        "",
        "## VQGAN reconstruction (test images; top: original, bottom: reconstruction)",
        "",
        f"![reconstruction]({rel}/reconstruction.png)",
        "",
        "## Learning curve",
        "",
        "T2I (with CFG) and I2T accuracy on held-out single-shape test items at every "
        "fifth of the Liquid stage's steps:",
        "",
        f"![learning curve]({rel}/learning_curve.png)",
        "",
        "## Training curves",
        "",
        f"![llm losses]({rel}/llm_losses.png)",
        "",
        f"![vqgan]({rel}/vqgan_curves.png)",
        "",
        "## Outputs",
        "",
        "- `export/`: the final model for `transformers.AutoModelForCausalLM.from_pretrained`"
        " with its tokenizer and `liquid_vocab.json`; `export/vqgan/`: the VQGAN in taming "
        "format (`vqgan.yaml` + weights).",
        "- `base_hf/`: the text-only base LM in HF format; `liquid_init/`: its import-hf "
        "expansion that Liquid training started from.",
        "- `vqgan/`, `base_lm/`, `liquid/`: training workdirs (checkpoints, metrics.jsonl).",
        "",
    ]
    path = os.path.join(root, "report.md")
    with open(path, "w") as f:
        f.write("\n".join(out))
    return path
