"""``liquid-jax demo``: the embedded default, the whole Liquid recipe on one CPU.

    from configs.demo import get_config
    metrics = run_demo(get_config(), "/tmp/liquid_demo")     # or get_config("runlocal")

Stages (``StageRunner``: logged headers, wall times, ETA, resumable by done markers):

1. world    the shapes world (train / validation / test images, captions, text)
2. vqgan    train the image tokenizer; test-split reconstruction PSNR
3. codes    encode-images for every split
4. base_lm  a text-only LM on the text corpus, exported to HF (the Gemma stand-in)
5. import   import-hf --image_codes N (mean resizing): Liquid's starting point
6. liquid   Liquid training on text + T2I + I2T
7. eval     probe, T2I (CFG on / off), I2T, text perplexity before / after
8. export   HF transformers + taming VQGAN (the PyTorch hand-off)
9. report   report.md, plots, metrics.json
"""

from __future__ import annotations

import os

from absl import logging

from liquid_jax.demo import evaluate as evaluation
from liquid_jax.demo import report, stages, visuals
from liquid_jax.demo.runner import StageRunner

TITLES = {
    "world": "build the shapes world",
    "vqgan": "train the VQGAN",
    "codes": "extract codes (encode-images)",
    "base_lm": "train the text-only base LM, save as HF",
    "import": "import-hf with image codes (mean resizing)",
    "liquid": "train Liquid (text + T2I + I2T)",
    "eval": "evaluate (probe, T2I, I2T, text perplexity)",
    "export": "export HF + taming VQGAN",
    "report": "write the report",
}


def run_demo(config, workdir: str) -> dict:
    """Runs (or resumes) every stage in ``workdir``; returns the metrics of metrics.json."""
    workdir = os.path.abspath(workdir)
    os.makedirs(workdir, exist_ok=True)
    paths = stages.Paths(workdir)
    os.makedirs(paths.report, exist_ok=True)
    runner = StageRunner(workdir, config.budget_s.to_dict(), list(TITLES))
    logging.info("liquid-jax demo in %s (%s)", workdir,
                 "runlocal" if config.get("runlocal", False) else "default sizes")  # fmt: skip

    runner.run("world", TITLES["world"], lambda: stages.build_world(config, paths))
    vq = runner.run("vqgan", TITLES["vqgan"], lambda: stages.train_tokenizer_vqgan(config, paths))
    runner.run("codes", TITLES["codes"], lambda: stages.extract(config, paths))
    runner.run("base_lm", TITLES["base_lm"], lambda: stages.train_base(config, paths))
    runner.run("import", TITLES["import"], lambda: stages.import_base(config, paths))
    runner.run("liquid", TITLES["liquid"], lambda: stages.train_liquid(config, paths))

    ev = runner.run("eval", TITLES["eval"], lambda: evaluation.run_eval(config, paths))
    runner.run("export", TITLES["export"], lambda: stages.export_final(config, paths))

    def write_report():
        visuals.loss_curves(paths.base_lm, paths.liquid, paths.vqgan, paths.report)
        return {}

    runner.run("report", TITLES["report"], write_report)
    walls = dict(runner.walls)
    metrics = {
        "wall_s": sum(walls.values()),
        "vqgan_psnr_db": vq["test_psnr"],
        "vqgan_ssim": vq["test_ssim"],
        **ev,
        **{f"wall_{name}_s": w for name, w in walls.items()},
    }
    # metrics.json and report.md are rewritten on every run (cheap), so they always
    # hold the latest wall times even when every stage was already done.
    report.write_metrics(metrics, os.path.join(workdir, "metrics.json"))
    path = report.write_report(workdir, metrics, walls, TITLES, paths.report)
    logging.info("demo finished: %s\n%s", path, report.metrics_table(metrics))
    return metrics
