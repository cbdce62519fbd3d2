"""``sample`` takes a run's recorded settings as its defaults and warns before a task the
run never trained: what ``run_info.json`` holds (``tasks`` from the data mixture, the
T2I settings the demo evaluated with) reaches ``run_sample``; explicit flags win."""

import json

import numpy as np
import pytest
from PIL import Image

from liquid_jax.sample import t2i as t2i_lib
from liquid_jax.sample.cli_sample import run_sample

EVALUATED = {"cfg": 3.0, "cfg_min_p": 0.2, "temperature": 1.0, "top_k": 64, "top_p": 1.0}


class _Settings(Exception):
    """Raised by the fake sampler with the T2I settings it was given."""


class FakeSampler:
    vqgan = object()

    def t2i(self, prompts, progress=None, **settings):
        raise _Settings(settings)

    def i2t(self, images, question, **kw):
        return ["a caption"]


@pytest.fixture
def run_dir(tmp_path):
    """A train workdir's record (run_info.json beside checkpoints/), as the demo leaves it."""
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    info = {"spec": {}, "vqgan": "", "tasks": ["text", "t2i", "i2t"],
            "sampling": {"t2i": EVALUATED}}  # fmt: skip
    (run / "run_info.json").write_text(json.dumps(info))
    return str(run)


def _t2i_settings(tmp_path, **kw) -> dict:
    with pytest.raises(_Settings) as got:
        run_sample(task="t2i", out=str(tmp_path / "out"), prompt="w1", sampler=FakeSampler(), **kw)
    s = got.value.args[0]
    return {k: s[k] for k in ("cfg_scale", "cfg_min_p", "temperature", "top_k", "top_p")}


def test_t2i_defaults_are_the_runs_evaluated_settings_and_flags_win(run_dir, tmp_path):
    assert _t2i_settings(tmp_path, workdir=run_dir) == {
        "cfg_scale": 3.0,
        "cfg_min_p": 0.2,
        "temperature": 1.0,
        "top_k": 64,
        "top_p": 1.0,
    }
    given = _t2i_settings(tmp_path, workdir=run_dir, cfg=5.0, top_k=8)
    assert (given["cfg_scale"], given["top_k"], given["cfg_min_p"]) == (5.0, 8, 0.2)
    # No record (an HF directory, or a run the demo did not evaluate): the reference's.
    assert _t2i_settings(tmp_path) == {
        "cfg_scale": t2i_lib.CFG_SCALE, "cfg_min_p": 0.0, "temperature": t2i_lib.TEMPERATURE,
        "top_k": t2i_lib.TOP_K, "top_p": t2i_lib.TOP_P}  # fmt: skip


def test_a_question_to_a_run_that_never_trained_vqa_warns_once(run_dir, tmp_path, capsys):
    image = tmp_path / "x.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(image)
    common = dict(task="i2t", workdir=run_dir, image=str(image), sampler=FakeSampler())
    run_sample(out=str(tmp_path / "caption"), **common)
    assert "warning" not in capsys.readouterr().err  # captioning: trained
    run_sample(out=str(tmp_path / "vqa"), prompt="What is in the picture?", **common)
    warnings = [x for x in capsys.readouterr().err.splitlines() if "warning" in x]
    assert len(warnings) == 1 and "VQA chat format" in warnings[0], warnings
    assert "captioning (--task i2t without --prompt)" in warnings[0]
