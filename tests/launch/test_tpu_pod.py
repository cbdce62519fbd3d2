"""TPU launcher: exact gcloud argument lists for a v5p-64 slice and for two slices over
DCN, in the dry run's order, and override keys checked before anything is printed."""

import re
import shlex
import textwrap

import pytest

from launch import tpu_pod
from launch.tpu_pod import (
    TpuPod,
    create_command,
    dcn_overrides,
    delete_command,
    scp_command,
    ssh_command,
    train_script,
)
from launch.xla_flags import TPU_LIBTPU_ARGS

GC = ["gcloud", "compute", "tpus"]
WHERE = ["--zone=us-east5-a", "--project=proj"]
LIBTPU = "LIBTPU_INIT_ARGS=" + shlex.quote(" ".join(TPU_LIBTPU_ARGS)) + " "
# In its own session, appending to this launch's log; followed here until it ends.
LOG = "~/liquid_logs/train-STAMP.log"
TRAIN = (
    "mkdir -p ~/liquid_logs && cd ~/liquid_jax && setsid nohup env "
    + LIBTPU
    + "~/liquid_venv/bin/liquid-jax train --config=configs/liquid.py:base=gemma_7b "
    "--workdir=gs://bucket/run --config.optim.lr=1e-05 --expect_platform=tpu "
    f">> {LOG} 2>&1 < /dev/null & pid=$!; tail -n +1 --pid=$pid -F {LOG} | "
    'sed -u "s/^/[$(hostname)] /"; wait $pid'
)
STAMP = re.compile(r"\d{8}-\d{6}")


def _commands(out: str) -> list[list[str]]:
    """The commands a run printed (``+ ...`` lines), as argument lists."""
    return [shlex.split(line[2:]) for line in out.splitlines() if line.startswith("+ ")]


def test_v5p_64_dry_run_creates_copies_installs_and_trains_on_every_worker(capsys):
    argv = ["up", "--name", "liquid", "--zone", "us-east5-a", "--project", "proj",
            "--accelerator", "v5p-64", "--spot", "--config", "configs/liquid.py:base=gemma_7b",
            "--workdir", "gs://bucket/run", "--config.optim.lr=1e-05",
            "--no_path_check",  # no init_from: random weights of the preset's shape
            "--dry_run"]  # fmt: skip
    assert tpu_pod.main(argv) == 0
    create, scp, unpack, install, train = _commands(capsys.readouterr().out)
    tpu_pod.main(argv)
    scp_again = _commands(capsys.readouterr().out)[1]
    assert create == [*GC, "tpu-vm", "create", "liquid", *WHERE, "--accelerator-type=v5p-64",
                      "--version=v2-alpha-tpuv5", "--spot"]  # fmt: skip
    assert scp[:5] == [*GC, "tpu-vm", "scp"]
    # A staging folder and a remote name of each launch's own: two launches never collide.
    assert "/liquid_jax_code_" in scp[5] and scp_again[5] != scp[5]
    assert scp[6] == f"liquid:~/liquid_jax-{scp[5].split('/')[-2]}.tar.gz"
    assert scp[7:] == [*WHERE, "--worker=all"]
    ssh = [*GC, "tpu-vm", "ssh", "liquid", *WHERE, "--worker=all"]
    assert unpack[:-1] == ssh and install[:-1] == ssh and train[:-1] == ssh
    assert unpack[-1].startswith("--command=rm -rf ~/liquid_jax && mkdir -p ~/liquid_jax")
    assert "uv venv --quiet --seed --allow-existing --python 3.11 ~/liquid_venv" in install[-1]
    assert "~/liquid_venv/bin/pip install --quiet -e '.[tpu]'" in install[-1]
    assert STAMP.sub("STAMP", train[-1]) == "--command=" + TRAIN


def test_builders_for_two_slices_use_queued_resources_and_dcn_mesh():
    pod = TpuPod("ms", "us-east5-a", "v5p-64", num_slices=2, project="proj", reserved=True)
    qr = [*GC, "queued-resources"]
    assert create_command(pod) == [*qr, "create", "ms", *WHERE, "--accelerator-type=v5p-64",
                                   "--runtime-version=v2-alpha-tpuv5", "--node-count=2",
                                   "--node-prefix=ms", "--reserved"]  # fmt: skip
    assert ssh_command(pod, "hostname") == [*qr, "ssh", "ms", *WHERE, "--worker=all",
                                            "--node=all", "--command=hostname"]  # fmt: skip
    assert scp_command(pod, "/tmp/c.tgz", "~/c.tgz") == [
        *qr, "scp", "/tmp/c.tgz", "ms:~/c.tgz", *WHERE, "--worker=all", "--node=all"]  # fmt: skip
    assert delete_command(pod) == [*qr, "delete", "ms", *WHERE, "--quiet", "--force"]
    assert dcn_overrides(2) == {"mesh.dcn_data": "2"}
    assert dcn_overrides(4, "fsdp") == {"mesh.dcn_fsdp": "4"}
    assert dcn_overrides(1) == {}
    script = train_script("c.py", "gs://b/r", dcn_overrides(2), env={"A": "1 2"}, detach=True,
                          stamp="S")  # fmt: skip
    assert script == ("mkdir -p ~/liquid_logs && cd ~/liquid_jax && setsid nohup env A='1 2' "
                      "~/liquid_venv/bin/liquid-jax train --config=c.py --workdir=gs://b/r "
                      "--config.mesh.dcn_data=2 --expect_platform=tpu "
                      ">> ~/liquid_logs/train-S.log 2>&1 < /dev/null &")  # fmt: skip


def test_multislice_dry_run_passes_the_dcn_size_to_the_config(tmp_path, capsys):
    # A config whose mesh has the DCN keys MeshConfig reads.
    cfg = tmp_path / "dcn.py"
    cfg.write_text(
        textwrap.dedent("""
        from configs.smoke import get_config as smoke
        def get_config(arg=""):
            c = smoke(arg)
            c.mesh.update(dcn_data=1, dcn_fsdp=1, dcn_tensor=1)
            return c
    """)
    )
    tpu_pod.main(["up", "--name", "ms", "--zone", "z", "--accelerator", "v6e-256",
                  "--num_slices", "4", "--config", str(cfg), "--workdir", "gs://b/r",
                  "--repo_url", "https://example.com/liquid_jax.git", "--ref", "v1",
                  "--dry_run"])  # fmt: skip
    create, clone, _install, train = _commands(capsys.readouterr().out)
    assert "--node-count=4" in create and "--runtime-version=v2-alpha-tpuv6e" in create
    assert clone[-1] == ("--command=rm -rf ~/liquid_jax && git clone --quiet "
                         "https://example.com/liquid_jax.git ~/liquid_jax && "
                         "git -C ~/liquid_jax checkout --quiet v1")  # fmt: skip
    assert "--node=all" in train and "--config.mesh.dcn_data=4" in train[-1]


def test_unknown_override_fails_before_any_command(capsys):
    with pytest.raises(SystemExit, match="'lrr' is not in config.optim; valid keys there: b1"):
        tpu_pod.main(["train", "--name", "x", "--zone", "z", "--config", "configs/smoke.py",
                      "--workdir", "gs://b/r", "--config.optim.lrr=1", "--dry_run"])  # fmt: skip
    assert "+ gcloud" not in capsys.readouterr().out


def test_delete_and_logs(capsys):
    tpu_pod.main(["delete", "--name", "liquid", "--zone", "z", "--dry_run"])
    tpu_pod.main(["logs", "--name", "liquid", "--zone", "z", "--dry_run"])
    delete, logs = _commands(capsys.readouterr().out)
    assert delete == [*GC, "tpu-vm", "delete", "liquid", "--zone=z", "--quiet"]
    assert logs == [
        *GC,
        "tpu-vm",
        "ssh",
        "liquid",
        "--zone=z",
        "--worker=0",
        "--command=tail -n 200 -F $(ls -t ~/liquid_logs/train-*.log | head -n 1)",
    ]


def test_bad_accelerator_is_a_clear_error():
    with pytest.raises(ValueError, match="expected e.g. v5p-64"):
        TpuPod("x", "z", "v5p64")
