"""The LLM training loop on the in-memory smoke stream (configs/smoke.py)."""

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import chex
import numpy as np
import pytest
from absl import flags

from configs.smoke import get_config
from liquid_jax.train.checkpoint import Checkpointer
from liquid_jax.train.loop import train

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _rows(workdir):
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


def _train_losses(workdir):
    return {r["step"]: r["loss"] for r in _rows(workdir) if "loss" in r}


def test_loss_drops_and_metrics_are_complete(smoke_run):
    workdir, last = smoke_run
    tmp_path = Path(workdir)
    losses = _train_losses(tmp_path)
    first = losses[min(losses)]
    assert last["loss"] < first - 1.5, (first, last["loss"])
    assert last["val_loss"] < 3.5
    for key in (
        "loss_text",
        "loss_t2i",
        "loss_i2t",
        "accuracy",
        "grad_norm",
        "lr",
        "tokens_per_s",
        "step_time_s",
        "mfu",
    ):
        assert np.isfinite(last[key]), key
    assert Checkpointer(str(tmp_path)).latest_step() == 40
    assert (tmp_path / "liquid_vocab.json").exists()
    assert (tmp_path / "tokenizer" / "tokenizer.model").exists()


def test_sharded_training_matches_single_device(tmp_path, cpu_devices):
    losses = {}
    for name, mesh in (
        ("single", {"num_devices": 1, "data": 1}),
        ("sharded", {"data": 2, "fsdp": 2, "tensor": 2}),
    ):
        config = get_config("steps=6")
        config.log_every_steps = 1
        config.eval_every_steps = 0
        config.mesh.update(mesh)
        train(config, str(tmp_path / name))
        losses[name] = _train_losses(tmp_path / name)
    assert sorted(losses["single"]) == list(range(1, 7))
    single = [losses["single"][s] for s in range(1, 7)]
    sharded = [losses["sharded"][s] for s in range(1, 7)]
    np.testing.assert_allclose(sharded, single, rtol=2e-5)
    assert single[-1] < single[0]


def _cli(workdir, steps):
    return [
        sys.executable,
        "-m",
        "liquid_jax.cli",
        "train",
        f"--config={REPO}/configs/smoke.py:steps={steps}",
        f"--workdir={workdir}",
        "--config.log_every_steps=1",
        "--config.checkpoint_every_steps=5",
        "--config.eval_every_steps=0",
    ]


def _env():
    env = dict(os.environ, PYTHONPATH=REPO, JAX_PLATFORMS="cpu")
    env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
    return env


@pytest.mark.slow
def test_sigkill_then_resume_equals_straight_run(tmp_path):
    """15 steps straight, and 15 killed (SIGKILL) after the step-5 checkpoint and resumed:
    the same losses after the restart and the same final state, bit for bit."""
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    subprocess.run(
        _cli(straight, 15), env=_env(), cwd=REPO, check=True, capture_output=True, timeout=600
    )
    proc = subprocess.Popen(
        _cli(resumed, 15),
        env=_env(),
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    first_ckpt = resumed / "checkpoints" / "5"
    deadline = time.time() + 300
    while not first_ckpt.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert first_ckpt.exists()
    assert Checkpointer(str(resumed)).latest_step() < 15, "killed too late to test resume"
    subprocess.run(
        _cli(resumed, 15), env=_env(), cwd=REPO, check=True, capture_output=True, timeout=600
    )

    a, b = _train_losses(straight), _train_losses(resumed)
    assert sorted(b) == list(range(1, 16))
    assert [a[s] for s in range(6, 16)] == [b[s] for s in range(6, 16)]
    pa = Checkpointer(str(straight)).restore_raw(15)
    pb = Checkpointer(str(resumed)).restore_raw(15)
    chex.assert_trees_all_equal(pa, pb)  # structure too, not only zipped leaves


def test_unknown_override_key_fails_before_anything_runs(tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "liquid_jax.cli",
            "train",
            "--config",
            "configs/smoke.py",
            f"--workdir={tmp_path}",
            "--config.optim.lrr=3",
        ],
        cwd=REPO,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2
    assert "unknown config key 'optim.lrr'" in out.stderr and "lr, min_lr_ratio" in out.stderr
    assert not (tmp_path / "checkpoints").exists()


def test_cli_run_applies_overrides_from_its_own_argv(monkeypatch, tmp_path):
    """``cli.run(argv)`` from Python (sys.argv holds something else) keeps --config.* values."""
    from liquid_jax import cli

    seen = {}
    monkeypatch.setitem(cli.COMMANDS, "train", lambda: seen.update(cli.FLAGS.config.to_dict()))
    monkeypatch.setattr(sys, "argv", ["pytest", "-q"])
    argv = ["liquid-jax", "train", f"--config={REPO}/configs/smoke.py", f"--workdir={tmp_path}",
            "--config.total_steps=7", "--config.optim.lr=0.125"]  # fmt: skip
    with pytest.raises(SystemExit) as exit_info:
        cli.run(argv)
    assert exit_info.value.code in (0, None)
    assert seen["total_steps"] == 7 and seen["optim"]["lr"] == 0.125


def _tear(path):
    """What a disk filling up or a copy cut short leaves: the first half of the file."""
    data = Path(path).read_bytes()
    Path(path).write_bytes(data[: len(data) // 2])


def _copy_of(smoke_run, tmp_path):
    """A copy of the session's smoke run (checkpoints 20 and 40) to damage."""
    workdir = tmp_path / "run"
    shutil.copytree(smoke_run[0], workdir)
    return workdir


def _smoke_config():
    config = get_config("steps=40")  # as the smoke_run fixture trains it
    config.eval_every_steps = config.checkpoint_every_steps = 20
    return config


@pytest.mark.parametrize("item", ["meta", "state"])
def test_a_torn_newest_checkpoint_resumes_from_the_previous_one(smoke_run, tmp_path, caplog, item):
    """Step 40's ``meta`` JSON (or its largest array file) cut in half: ``train`` warns,
    resumes from step 20 and ends as the straight run did, losses and state."""
    workdir = _copy_of(smoke_run, tmp_path)
    step_dir = workdir / "checkpoints" / "40"
    torn = step_dir / "meta" / "metadata"
    if item == "state":  # the largest array data file
        torn = max((step_dir / "state" / "d").iterdir(), key=lambda p: p.stat().st_size)
    _tear(torn)
    # A row before step 20 changed by hand: a run restarted from step 0 would rewrite it.
    rows = _rows(workdir)
    for row in rows:
        if row["step"] == 10 and "loss" in row:
            row["loss"] = -1.0
    (workdir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with caplog.at_level(logging.WARNING):
        train(_smoke_config(), str(workdir))
    warning = next(r.getMessage() for r in caplog.records if "cannot be read" in r.getMessage())
    assert "step 40 in" in warning and "trying step 20" in warning
    assert f"damaged: {torn}" in warning
    straight, resumed = _train_losses(smoke_run[0]), _train_losses(workdir)
    assert resumed[10] == -1.0, "restarted from step 0"
    assert sorted(resumed) == sorted(straight)
    assert [resumed[s] for s in (25, 30, 35, 40)] == [straight[s] for s in (25, 30, 35, 40)]
    chex.assert_trees_all_equal(
        Checkpointer(smoke_run[0]).restore_raw(40), Checkpointer(str(workdir)).restore_raw(40)
    )


def test_every_checkpoint_torn_is_one_line_from_the_cli(smoke_run, tmp_path, monkeypatch, capsys):
    from liquid_jax import cli

    workdir = _copy_of(smoke_run, tmp_path)
    for step in (20, 40):
        _tear(workdir / "checkpoints" / str(step) / "meta" / "metadata")
    argv = ["liquid-jax", "train", f"--config={REPO}/configs/smoke.py:steps=40",
            f"--workdir={workdir}", "--config.eval_every_steps=20",
            "--config.checkpoint_every_steps=20"]  # fmt: skip
    monkeypatch.setattr(sys, "argv", ["pytest"])
    flags.FLAGS.unparse_flags()
    try:
        with pytest.raises(SystemExit) as exit_info:
            cli.run(argv)
    finally:
        flags.FLAGS.unparse_flags()
        flags.FLAGS.mark_as_parsed()
    err = capsys.readouterr().err
    assert exit_info.value.code == 1 and "Traceback" not in err
    line = next(x for x in err.splitlines() if x.startswith("liquid-jax train: error: "))
    assert "no checkpoint in" in line and "step 40: " in line and "step 20: " in line
    assert _train_losses(workdir) == _train_losses(smoke_run[0]), "started again from step 0"


def test_loading_a_run_for_sampling_walks_back_too(smoke_run, tmp_path, caplog):
    from liquid_jax.runs.trained_model import load_trained_model

    workdir = _copy_of(smoke_run, tmp_path)
    arrays = workdir / "checkpoints" / "40" / "state" / "d"
    _tear(max(arrays.iterdir(), key=lambda p: p.stat().st_size))
    with caplog.at_level(logging.WARNING):
        *_, step = load_trained_model(str(workdir))
    assert step == 20
    assert any("step 40 in" in r.getMessage() for r in caplog.records)
