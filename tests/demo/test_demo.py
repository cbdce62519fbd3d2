"""``liquid-jax demo`` end to end in its reduced configuration (``configs/demo.py:runlocal``):
every artefact is written, every metric is present and finite, and a rerun skips the
finished stages."""

import json
import math
import os
import subprocess
import sys
import time

import pytest

from configs.demo import get_config
from liquid_jax.cli_args import DEMO_CONFIG, with_default_config
from liquid_jax.demo import TITLES, run_demo


def _read(path):
    with open(path) as f:
        return f.read()


REQUIRED = (
    "wall_s", "vqgan_psnr_db", "probe_acc", "t2i_color_acc", "t2i_shape_acc",
    "t2i_color_acc_nocfg", "t2i_shape_acc_nocfg", "i2t_color_acc", "i2t_shape_acc",
    "text_ppl_base", "text_ppl_liquid",
    # what the caption, and each class of its words, is worth to the code loss
    "t2i_caption_gain_nats", "t2i_caption_color_nats", "t2i_caption_shape_nats",
    "t2i_caption_size_nats", "t2i_caption_position_nats",
    # the single-shape headline metrics, CFG against none, and the learning curve
    "t2i_size_acc", "t2i_position_acc", "t2i_mean_acc", "t2i_mean_acc_nocfg",
    "i2t_position_acc", "probe_recon_shape_acc", "t2i_prompts_seen_in_train_frac",
)  # fmt: skip


def _assert_same_metrics(got: dict, want: dict) -> None:
    """Equal metrics: numbers to float tolerance, the learning curve's lists exactly (a JSON
    round trip keeps floats)."""
    lists = {k for k, v in want.items() if isinstance(v, list)}
    assert set(got) == set(want)
    assert {k: got[k] for k in lists} == {k: want[k] for k in lists}
    assert {k: got[k] for k in got if k not in lists} == pytest.approx(
        {k: v for k, v in want.items() if k not in lists}
    )


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("demo"))
    t = time.perf_counter()
    metrics = run_demo(get_config("runlocal"), workdir)
    return workdir, metrics, time.perf_counter() - t


def test_every_artefact_is_written(demo):
    workdir, _, _ = demo
    for name in ("report.md", "metrics.json"):
        assert os.path.getsize(os.path.join(workdir, name)) > 0, name
    for png in ("t2i_grid", "i2t_grid", "reconstruction", "llm_losses", "vqgan_curves",
                "learning_curve"):  # fmt: skip
        path = os.path.join(workdir, "report", f"{png}.png")
        with open(path, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n", path
    report = _read(os.path.join(workdir, "report.md"))
    for picture in ("t2i_grid.png", "i2t_grid.png", "reconstruction.png", "llm_losses.png",
                    "learning_curve.png"):  # fmt: skip
        assert picture in report
    assert "| stage | wall (s) |" in report
    for name in TITLES:
        assert os.path.exists(os.path.join(workdir, "stages", f"{name}.json")), name


def test_exports_load(demo):
    import transformers

    workdir, _, _ = demo
    for hf in ("export", "base_hf", "liquid_init"):
        config = transformers.AutoConfig.from_pretrained(os.path.join(workdir, hf))
        assert config.model_type == "gemma", hf
    vocab = json.loads(_read(os.path.join(workdir, "export", "liquid_vocab.json")))
    assert vocab["num_image_codes"] == get_config("runlocal").vqgan.model.n_embed
    from liquid_jax.export import load_vqgan

    files = os.listdir(os.path.join(workdir, "export", "vqgan"))
    assert "vqgan.yaml" in files
    assert any(f.startswith("vqgan.") and f != "vqgan.yaml" for f in files)
    vqgan = load_vqgan(os.path.join(workdir, "export", "vqgan"))
    assert vqgan.config.n_embed == vocab["num_image_codes"]


def test_every_metric_is_present_and_finite(demo):
    workdir, metrics, _ = demo
    saved = json.loads(_read(os.path.join(workdir, "metrics.json")))
    _assert_same_metrics(saved, metrics)
    for key in REQUIRED:
        assert key in saved and math.isfinite(saved[key]), key
    for key, value in saved.items():
        if key.endswith("_acc") or key.endswith("_acc_nocfg"):
            assert 0.0 <= value <= 1.0, key
    for name in TITLES:
        assert saved[f"wall_{name}_s"] >= 0.0
    assert saved["text_ppl_base"] > 1.0 and saved["text_ppl_liquid"] > 1.0
    # The learning curve scores a checkpoint at every fifth of the Liquid steps.
    steps = get_config("runlocal").liquid.total_steps
    assert saved["curve_steps"] == [steps // 5 * (i + 1) for i in range(5)]
    for key in ("curve_t2i_mean", "curve_i2t_mean"):
        assert len(saved[key]) == 5 and all(0.0 <= v <= 1.0 for v in saved[key]), key


def test_rerun_skips_finished_stages(demo):
    workdir, metrics, first = demo
    t = time.perf_counter()
    again = run_demo(get_config("runlocal"), workdir)
    assert time.perf_counter() - t < max(10.0, 0.2 * first)
    _assert_same_metrics(again, metrics)


def test_cli_defaults_to_the_demo_config():
    default = [f"--config={DEMO_CONFIG}", "--workdir=x"]
    assert with_default_config("demo", ["--workdir=x"]) == default
    assert with_default_config("demo", ["--config=c.py"]) == ["--config=c.py"]
    assert with_default_config("train", ["--workdir=x"]) == ["--workdir=x"]
    assert os.path.exists(DEMO_CONFIG)
    out = subprocess.run(
        [sys.executable, "-m", "liquid_jax.cli", "demo", "--config.eval.num_prompts=4"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode != 0 and "--workdir" in out.stderr


def test_the_liquid_run_records_its_tasks_and_evaluated_sampling(demo):
    """``liquid-jax sample --workdir DIR/liquid`` then samples as the evaluation did, and
    the export says its VQGAN (each 4x4 patch encoded alone) is not a stock one."""
    workdir, _, _ = demo
    info = json.loads(_read(os.path.join(workdir, "liquid", "run_info.json")))
    e = get_config("runlocal").eval
    assert info["tasks"] == ["text", "t2i", "i2t"]
    assert info["sampling"]["t2i"] == {"cfg": e.cfg_scale, "cfg_min_p": e.cfg_min_p,
                                       "temperature": e.temperature, "top_k": e.top_k,
                                       "top_p": e.top_p}  # fmt: skip
    readme = _read(os.path.join(workdir, "export", "vqgan", "README.md"))
    assert "`encode_tile: 1`" in readme
