"""Train on a Cloud TPU slice (or several, over DCN): create, set up, train, delete.

    # one v5p-64 slice: create it, copy this checkout, install, train, stream the logs
    python launch/tpu_pod.py up --name liquid --zone us-east5-a --accelerator v5p-64 \\
        --config configs/liquid.py:base=gemma_7b,init=/ckpt/init --workdir gs://bucket/run \\
        --config.data.text_sources='("jsonl:/data/text/*.jsonl",)'
    python launch/tpu_pod.py delete --name liquid --zone us-east5-a --accelerator v5p-64

    # two slices over DCN (queued resources): adds --config.mesh.dcn_data=2
    python launch/tpu_pod.py up --num_slices 2 ...

Subcommands: ``create``, ``setup`` (copy code + install), ``train``, ``up`` (all three),
``logs`` (follow worker 0's log of a ``--detach`` run), ``ssh --remote CMD`` (any command
on every worker), ``delete``. Every gcloud command is printed before it runs;
``--dry_run`` only prints them. The same shape as big_vision's ``run_tpu.sh``: one
command, run on every worker with ``--worker=all``. The workdir must be one all workers
see: a ``gs://`` URL (written natively) or a shared mount.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import shlex
import sys
import tarfile
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as `python launch/tpu_pod.py`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from launch.common import (  # noqa: E402
    REPO,
    ConfigKeyError,
    Runner,
    check_overrides,
    check_paths,
    liquid_args,
    load_config,
    parse_override_args,
)
from launch.xla_flags import TPU_LIBTPU_ARGS, joined  # noqa: E402

# Default TPU VM images per generation (https://cloud.google.com/tpu/docs/runtimes).
RUNTIMES = {
    "v4": "tpu-ubuntu2204-base",
    "v5litepod": "v2-alpha-tpuv5-lite",
    "v5p": "v2-alpha-tpuv5",
    "v6e": "v2-alpha-tpuv6e",
}
CODE_DIR = "~/liquid_jax"
VENV = "~/liquid_venv"
LOG_DIR = "~/liquid_logs"  # one log per launch: train-YYYYmmdd-HHMMSS.log, appended
NEWEST_LOG = f"$(ls -t {LOG_DIR}/train-*.log | head -n 1)"


def log_path(stamp: str) -> str:
    """The workers' log of the launch started at ``stamp`` (``time.strftime`` of it)."""
    return f"{LOG_DIR}/train-{stamp}.log"


@dataclasses.dataclass(frozen=True)
class TpuPod:
    """One slice (``tpu-vm``) or ``num_slices`` identical slices (a queued resource whose
    nodes are ``NAME-0``, ``NAME-1``, ...)."""

    name: str
    zone: str
    accelerator: str = "v5p-8"
    runtime_version: str = ""  # "": the generation's default (RUNTIMES)
    num_slices: int = 1
    project: str = ""
    spot: bool = False
    reserved: bool = False

    def __post_init__(self):
        m = re.fullmatch(r"(v\d+[a-z]*)-(\d+)", self.accelerator)
        if not m:
            raise ValueError(f"accelerator {self.accelerator!r}: expected e.g. v5p-64, v6e-256")
        if not self.runtime_version and m.group(1) not in RUNTIMES:
            raise ValueError(
                f"no default runtime for {m.group(1)}; pass --runtime_version "
                f"(known defaults: {RUNTIMES})"
            )
        if self.num_slices < 1:
            raise ValueError(f"num_slices must be >= 1, got {self.num_slices}")
        if self.spot and self.reserved:
            raise ValueError("choose --spot or --reserved, not both")

    @property
    def multislice(self) -> bool:
        return self.num_slices > 1

    @property
    def version(self) -> str:
        return self.runtime_version or RUNTIMES[self.accelerator.split("-")[0]]

    def flags(self) -> list[str]:
        return [f"--zone={self.zone}"] + ([f"--project={self.project}"] if self.project else [])

    def group(self) -> list[str]:
        """The gcloud command group that addresses every host of the job."""
        kind = "queued-resources" if self.multislice else "tpu-vm"
        return ["gcloud", "compute", "tpus", kind]

    def all_hosts(self) -> list[str]:
        return ["--worker=all"] + (["--node=all"] if self.multislice else [])


# --- pure command builders


def create_command(pod: TpuPod) -> list[str]:
    """``tpu-vm create`` for one slice; a queued resource with ``--node-count`` for several
    (multislice needs queued resources)."""
    cmd = [*pod.group(), "create", pod.name, *pod.flags(),
           f"--accelerator-type={pod.accelerator}"]  # fmt: skip
    if pod.multislice:
        cmd += [f"--runtime-version={pod.version}", f"--node-count={pod.num_slices}",
                f"--node-prefix={pod.name}"]  # fmt: skip
    else:
        cmd += [f"--version={pod.version}"]
    return cmd + (["--spot"] if pod.spot else []) + (["--reserved"] if pod.reserved else [])


def state_command(pod: TpuPod) -> list[str]:
    """Prints the queued resource's state (ACTIVE once every slice is up)."""
    return [*pod.group(), "describe", pod.name, *pod.flags(), "--format=value(state.state)"]


def delete_command(pod: TpuPod) -> list[str]:
    extra = ["--force"] if pod.multislice else []  # --force also deletes the slices
    return [*pod.group(), "delete", pod.name, *pod.flags(), "--quiet", *extra]


def ssh_command(pod: TpuPod, remote: str, worker: str = "all") -> list[str]:
    """``remote`` (a shell command line) on every host (``worker="all"``) or on one."""
    where = pod.all_hosts() if worker == "all" else [f"--worker={worker}"]
    if pod.multislice and worker != "all":
        where.append("--node=0")
    return [*pod.group(), "ssh", pod.name, *pod.flags(), *where, f"--command={remote}"]


def scp_command(pod: TpuPod, local: str, remote: str) -> list[str]:
    return [*pod.group(), "scp", local, f"{pod.name}:{remote}", *pod.flags(), *pod.all_hosts()]


def unpack_script(tarball: str = "~/liquid_jax.tar.gz") -> str:
    return (f"rm -rf {CODE_DIR} && mkdir -p {CODE_DIR} && tar xzf {tarball} -C {CODE_DIR} "
            f"&& rm -f {tarball}")  # fmt: skip


def clone_script(repo_url: str, ref: str) -> str:
    q = shlex.quote
    return (f"rm -rf {CODE_DIR} && git clone --quiet {q(repo_url)} {CODE_DIR} && "
            f"git -C {CODE_DIR} checkout --quiet {q(ref)}")  # fmt: skip


def install_script(python: str = "3.11", extra: str = "tpu") -> str:
    """A venv with ``python`` on every worker and ``pip install -e '.[tpu]'`` into it.

    TPU VM images ship Ubuntu 22.04's Python 3.10 and the package needs 3.11, so the venv
    comes from uv (a standalone binary that fetches the interpreter); pip does the install.
    """
    return " && ".join([
        "set -e",
        "export PATH=$HOME/.local/bin:$PATH",
        "(command -v uv >/dev/null || curl -LsSf https://astral.sh/uv/install.sh | sh)",
        f"uv venv --quiet --seed --allow-existing --python {python} {VENV}",
        f"cd {CODE_DIR}",
        f"{VENV}/bin/pip install --quiet -e '.[{extra}]'",
        f"{VENV}/bin/python -c 'import jax; print(jax.device_count(), jax.devices()[0])'",
    ])  # fmt: skip


def dcn_overrides(num_slices: int, axis: str = "data") -> dict[str, str]:
    """The mesh's DCN factor: ``num_slices`` slices along ``axis`` (data or fsdp)."""
    if axis not in ("data", "fsdp", "tensor"):
        raise ValueError(f"dcn axis {axis!r}: expected data, fsdp or tensor")
    return {f"mesh.dcn_{axis}": str(num_slices)} if num_slices > 1 else {}


def train_script(
    config: str,
    workdir: str,
    overrides: dict[str, str] | None = None,
    env: dict[str, str] | None = None,
    detach: bool = False,
    stamp: str = "",
) -> str:
    """The shell line every worker runs: ``liquid-jax train --expect_platform=tpu`` from
    the venv in its own session (``setsid nohup``), appending to this launch's log
    (``log_path(stamp)``), so a dropped ssh session leaves the run and its log going and
    a rerun starts a new log. In the foreground the log is followed until the run ends
    (each line with the host name: all workers stream into one terminal) and the run's
    exit status is returned; with ``detach`` the line returns at once (see ``logs``)."""
    argv = [f"{VENV}/bin/liquid-jax", *liquid_args(config, workdir, overrides or {}),
            "--expect_platform=tpu"]  # fmt: skip
    exports = [f"{k}={shlex.quote(v)}" for k, v in (env or {}).items()]
    cmd = " ".join([*exports, *(shlex.quote(a) if a[0] != "~" else a for a in argv)])
    log = log_path(stamp or time.strftime("%Y%m%d-%H%M%S"))
    start = (f"mkdir -p {LOG_DIR} && cd {CODE_DIR} && "
             f"setsid nohup env {cmd} >> {log} 2>&1 < /dev/null &")  # fmt: skip
    if detach:
        return start
    return (f"{start} pid=$!; tail -n +1 --pid=$pid -F {log} | "
            f'sed -u "s/^/[$(hostname)] /"; wait $pid')  # fmt: skip


def pack_code(repo: Path, out: Path) -> int:
    """Tars the checkout's tracked and untracked-but-not-ignored files (what git would
    commit; no .venv, caches or workdirs). Returns the number of files."""
    import subprocess

    listed = subprocess.run(
        ["git", "-C", str(repo), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    files = [f for f in listed.split("\0") if f and (repo / f).is_file()]
    with tarfile.open(out, "w:gz") as tar:
        for f in files:
            tar.add(repo / f, arcname=f)
    return len(files)


# --- runner


def wait_active(pod: TpuPod, runner: Runner, poll_s: float = 30, timeout_s: float = 6 * 3600):
    """Waits until a queued resource is ACTIVE (slices are granted when capacity frees)."""
    if runner.dry_run or not pod.multislice:
        return
    t0 = time.time()
    while (state := runner.output(state_command(pod)).strip()) != "ACTIVE":
        if state in ("FAILED", "SUSPENDED") or time.time() - t0 > timeout_s:
            raise RuntimeError(f"queued resource {pod.name} is {state or 'unknown'}")
        runner.note(f"{pod.name}: {state}; waiting {poll_s:.0f} s")
        time.sleep(poll_s)


def setup(pod: TpuPod, runner: Runner, repo_url: str = "", ref: str = "main", python="3.11"):
    if repo_url:
        runner.run(ssh_command(pod, clone_script(repo_url, ref)))
    else:
        # A folder of its own per launch: two launches from one machine never share it.
        staging = Path(tempfile.mkdtemp(prefix="liquid_jax_code_"))
        tarball = staging / "liquid_jax.tar.gz"
        if runner.dry_run:
            runner.note(f"would pack this checkout ({REPO}) into {tarball}")
        else:
            runner.note(f"packed {pack_code(REPO, tarball)} files of {REPO} into {tarball}")
        remote = f"~/liquid_jax-{staging.name}.tar.gz"
        try:
            runner.run(scp_command(pod, str(tarball), remote))
        finally:
            tarball.unlink(missing_ok=True)
            staging.rmdir()
        runner.run(ssh_command(pod, unpack_script(remote)))
    runner.run(ssh_command(pod, install_script(python)))


def _remote_spec(spec: str) -> str:
    """A config inside this checkout, named relative to it (the workers' copy lives in
    ~/liquid_jax); other paths are passed as they are."""
    path, colon, arg = spec.partition(":")
    try:
        return str(Path(path).resolve().relative_to(REPO)) + colon + arg
    except ValueError:
        return spec


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("action", choices=["create", "setup", "train", "up", "logs", "ssh", "delete"])
    p.add_argument("--name", required=True, help="TPU (queued resource) name")
    p.add_argument("--zone", required=True)
    p.add_argument("--project", default="")
    p.add_argument("--accelerator", default="v5p-8", help="e.g. v5p-64, v6e-256, v4-32")
    p.add_argument("--runtime_version", default="", help="default: by generation")
    p.add_argument("--num_slices", type=int, default=1, help="> 1: multislice over DCN")
    p.add_argument("--dcn_axis", default="data", help="mesh axis the slices split (data|fsdp)")
    p.add_argument("--spot", action="store_true")
    p.add_argument("--reserved", action="store_true")
    p.add_argument("--config", help="config file[:arg] (train, up)")
    p.add_argument("--workdir", help="run directory seen by every worker (gs://...)")
    p.add_argument("--env", action="append", default=[], help="KEY=VALUE for the workers")
    p.add_argument(
        "--no_xla_flags",
        action="store_true",
        help="leave out launch/xla_flags.py's LIBTPU_INIT_ARGS defaults",
    )
    p.add_argument("--detach", action="store_true", help="train under nohup; see `logs`")
    p.add_argument("--repo_url", default="", help="git clone this instead of copying")
    p.add_argument("--ref", default="main", help="with --repo_url: branch, tag or commit")
    p.add_argument("--python", default="3.11", help="Python of the workers' venv")
    p.add_argument("--remote", default="", help="ssh: a command line for every worker")
    p.add_argument("--delete_after", action="store_true", help="up: delete when done")
    p.add_argument("--dry_run", action="store_true",
                   help="check the config here and print the commands only")  # fmt: skip
    p.add_argument("--no_path_check", action="store_true",
                   help="data and init_from exist only on the workers: check them there, "
                        "not here (every worker checks before training)")  # fmt: skip
    return p


def worker_env(pairs: list[str], xla_flags: bool = True) -> dict[str, str]:
    """``KEY=VALUE`` pairs -> the workers' environment, with the TPU flags of
    ``launch/xla_flags.py`` in ``LIBTPU_INIT_ARGS`` before any the user passed."""
    env = {}
    for kv in pairs:
        key, eq, value = kv.partition("=")
        if not eq or not key:
            raise SystemExit(f"tpu_pod: --env {kv!r} is not KEY=VALUE")
        env[key] = value
    if xla_flags:
        env["LIBTPU_INIT_ARGS"] = joined(TPU_LIBTPU_ARGS, env.get("LIBTPU_INIT_ARGS", ""))
    return env


def main(argv: list[str] | None = None) -> int:
    args, rest = _parser().parse_known_args(argv)
    overrides = parse_override_args(rest)
    pod = TpuPod(args.name, args.zone, args.accelerator, args.runtime_version,
                 args.num_slices, args.project, args.spot, args.reserved)  # fmt: skip
    runner = Runner(dry_run=args.dry_run)
    if args.action in ("train", "up"):
        if not args.config or not args.workdir:
            raise SystemExit(f"tpu_pod {args.action}: needs --config and --workdir")
        overrides = {**dcn_overrides(pod.num_slices, args.dcn_axis), **overrides}
        try:
            config = load_config(args.config)
            check_overrides(config, overrides, check_types=False)
        except ConfigKeyError as e:
            hint = ""
            if "dcn_" in str(e):
                hint = ("\n(multislice needs mesh.dcn_data / dcn_fsdp / dcn_tensor in the "
                        "config's mesh section, default 1, as MeshConfig reads them)")  # fmt: skip
            raise SystemExit(f"tpu_pod: {e}{hint}") from None
        if not args.no_path_check:
            hint = (" (checked on this machine; if the path exists only on the workers, "
                    "pass --no_path_check: every worker checks it before training)")  # fmt: skip
            check_paths("tpu_pod", config, overrides, args.workdir, hint)
    env = worker_env(args.env, xla_flags=not args.no_xla_flags)
    if args.action in ("create", "up"):
        runner.run(create_command(pod))
        wait_active(pod, runner)
    if args.action in ("setup", "up"):
        setup(pod, runner, args.repo_url, args.ref, args.python)
    rc = 0
    if args.action in ("train", "up"):
        stamp = time.strftime("%Y%m%d-%H%M%S")
        script = train_script(_remote_spec(args.config), args.workdir, overrides, env,
                              args.detach, stamp)  # fmt: skip
        runner.note(f"log on every worker: {log_path(stamp)} (`logs` follows worker 0's)")
        rc = runner.run(ssh_command(pod, script), check=False)
        if args.delete_after and not args.detach:
            runner.run(delete_command(pod))
    if args.action == "logs":
        runner.run(ssh_command(pod, f"tail -n 200 -F {NEWEST_LOG}", worker="0"), check=False)
    if args.action == "ssh":
        if not args.remote:
            raise SystemExit("tpu_pod ssh: needs --remote 'COMMAND'")
        rc = runner.run(ssh_command(pod, args.remote), check=False)
    if args.action == "delete":
        runner.run(delete_command(pod))
    return rc


if __name__ == "__main__":
    sys.exit(main())
