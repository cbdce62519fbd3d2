"""Sweeps: expansion and naming, keys checked before anything runs, and an end-to-end
sweep of three tiny smoke runs where one fails and the others still finish."""

import csv
import textwrap

import pytest

from launch import sweep as sweep_cli
from launch.common import load_config
from launch.sweep import SweepError, validate
from launch.sweep_report import group_labels
from launch.sweep_spec import expand, load_sweep, named, product, sweep, zip_


def test_product_zip_and_names():
    runs = expand(product(sweep("config.optim.lr", [1e-3, 3e-3]),
                          [named("text", {"data.image_text_sources": ()}), named("mixed")],
                          {"config.eval_steps": 2}))  # fmt: skip
    assert [r.name for r in runs] == ["lr=0.001-text", "lr=0.001-mixed",
                                      "lr=0.003-text", "lr=0.003-mixed"]  # fmt: skip
    assert runs[0].overrides == {"optim.lr": 1e-3, "data.image_text_sources": (), "eval_steps": 2}
    zipped = expand(zip_(sweep("model.spec.hidden_size", [64, 128], names=["h64", "h128"]),
                         sweep("model.spec.intermediate_size", [256, 512])))  # fmt: skip
    assert [r.name for r in zipped] == ["h64-intermediate_size=256", "h128-intermediate_size=512"]
    with pytest.raises(ValueError, match="share the names"):
        expand([named("a", {"seed": 1}), named("a", {"seed": 2})])
    with pytest.raises(ValueError, match="different lengths"):
        zip_(sweep("seed", [1, 2]), sweep("optim.lr", [1.0]))


def test_the_scaling_sweep_expands_and_fits_the_smoke_config():
    _, runs = load_sweep("configs/sweeps/scaling.py")
    assert len(runs) == 18 and runs[0].name == "h64-L2-text" and runs[-1].name == "h256-L4-mixed"
    validate(load_config("configs/smoke.py"), runs)


def test_unknown_keys_and_bad_values_fail_before_anything_runs(tmp_path, capsys):
    bad = tmp_path / "bad.py"
    bad.write_text(
        textwrap.dedent("""
        from launch.sweep_spec import sweep
        def get_sweep():
            return sweep("config.optim.learning_rate", [1e-3, 3e-3])
    """)
    )
    workdir = tmp_path / "runs"
    rc = sweep_cli.main(["--config", "configs/smoke.py:steps=3", "--sweep", str(bad),
                         "--workdir", str(workdir)])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 2
    assert "unknown config key 'optim.learning_rate'" in err
    assert "valid keys there: b1, b2, eps, freeze, grad_clip, lr," in err
    assert not workdir.exists()  # nothing ran
    config = load_config("configs/smoke.py")
    with pytest.raises(SweepError, match="'modell' is not in the top level"):
        validate(config, expand(sweep("modell.spec.hidden_size", [64])))
    with pytest.raises(SweepError, match="does not fit the field"):
        validate(config, expand(sweep("total_steps", ["many"])))


@pytest.mark.slow
def test_sweep_runs_points_reports_a_failed_one_and_collects_a_table(tmp_path, monkeypatch):
    # One fake device per run: a mesh with data=3 cannot divide it, so that point fails
    # at runtime (after the key check passed) while the other two train.
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=1")
    spec = tmp_path / "tiny.py"
    spec.write_text(
        textwrap.dedent("""
        from launch.sweep_spec import named, sweep
        def get_sweep():
            return sweep("config.optim.lr", [1e-3, 3e-3]) + [
                named("bad_mesh", {"config.mesh.data": 3, "config.optim.lr": 1e-3})]
    """)
    )
    workdir = tmp_path / "sweep"
    rc = sweep_cli.main(["--config", "configs/smoke.py:steps=3", "--sweep", str(spec),
                         "--workdir", str(workdir), "--parallel", "2",
                         "--timeout_s", "300"])  # fmt: skip
    assert rc == 1  # not every point finished
    with open(workdir / "sweep_results.csv") as f:
        rows = {r["name"]: r for r in csv.DictReader(f)}
    assert set(rows) == {"lr=0.001", "lr=0.003", "bad_mesh"}
    for name in ("lr=0.001", "lr=0.003"):
        assert rows[name]["status"] == "ok" and rows[name]["step"] == "3"
        assert float(rows[name]["loss"]) > 0 and float(rows[name]["val_loss"]) > 0
        assert float(rows[name]["val_loss_t2i"]) > 0
    assert rows["bad_mesh"]["status"] == "failed"
    assert "do not divide" in rows["bad_mesh"]["error"]
    table = (workdir / "sweep_results.md").read_text()
    assert "2 of 3 runs finished" in table
    assert [line.split(" | ")[1] for line in table.splitlines() if line.startswith("| lr=")] == [
        "ok", "ok"]  # fmt: skip
    assert "| bad_mesh | failed |" in table
    assert (workdir / "sweep_results.png").stat().st_size > 0  # lr is a numeric axis
    # Collecting again reads the same results without running anything.
    assert sweep_cli.main(["--config", "configs/smoke.py:steps=3", "--sweep", str(spec),
                           "--workdir", str(workdir), "--collect_only"]) == 1  # fmt: skip


def test_print_only_gives_one_cluster_command_per_point(capsys):
    sweep_cli.main(["--config", "configs/smoke.py", "--sweep", "configs/sweeps/smoke_lr.py",
                    "--workdir", "gs://b/s", "--launcher", "tpu",
                    "--launcher_args", "--name pod --zone z"])  # fmt: skip
    lines = capsys.readouterr().out.splitlines()[1:]
    assert lines == [
        "python launch/tpu_pod.py train --config=configs/smoke.py --workdir=gs://b/s/lr=0.001 "
        "--name pod --zone z --config.optim.lr=0.001 --config.eval_every_steps=10 "
        "--config.eval_steps=2",
        "python launch/tpu_pod.py train --config=configs/smoke.py --workdir=gs://b/s/lr=0.003 "
        "--name pod --zone z --config.optim.lr=0.003 --config.eval_every_steps=10 "
        "--config.eval_steps=2",
    ]


def test_two_lines_never_share_a_legend_label():
    """Runs named ``run-1`` .. ``run-4``: both groups' runs share only ``run``, which
    would label the two lines alike; the swept values tell them apart instead."""
    groups = [[{"name": "run-1", "optim.lr": 0.1}, {"name": "run-2", "optim.lr": 0.1}],
              [{"name": "run-3", "optim.lr": 0.2}, {"name": "run-4", "optim.lr": 0.2}]]  # fmt: skip
    labels = {"optim.lr": "optim.lr"}
    assert group_labels(groups, ["optim.lr"], labels) == ["optim.lr=0.1", "optim.lr=0.2"]
    named_groups = [[{"name": "h64-text", "optim.lr": 0.1}, {"name": "h128-text", "optim.lr": 0.1}],
                    [{"name": "h64-mixed", "optim.lr": 0.2}]]  # fmt: skip
    assert group_labels(named_groups, ["optim.lr"], labels) == ["text", "optim.lr=0.2"]
