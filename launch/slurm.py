"""Train on a SLURM GPU cluster: render ``launch/slurm.sbatch`` and submit it.

    # 2 nodes x 8 GPUs, one process per GPU (JAX's SLURM default)
    python launch/slurm.py --nodes 2 --gpus_per_node 8 --partition gpu --time 48:00:00 \\
        --config configs/liquid.py:base=gemma_7b,init=/ckpt/init --workdir /shared/runs/r1 \\
        --config.data.text_sources='("jsonl:/data/text/*.jsonl",)'
    # look first: print the script and the sbatch command, submit nothing
    python launch/slurm.py ... --dry_run

Every node runs ``srun liquid-jax train ...`` from the same checkout and venv (a shared
file system); ``jax.distributed`` picks the processes up from SLURM's variables.
``--per node`` runs one process per node that drives all its GPUs instead.
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

if __package__ in (None, ""):  # run as `python launch/slurm.py`
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
from launch.xla_flags import GPU_ENV, GPU_XLA_FLAGS, joined  # noqa: E402

TEMPLATE = Path(__file__).with_name("slurm.sbatch")
GPU_VENV = ".venv-gpu"  # python3.11 -m venv .venv-gpu && .venv-gpu/bin/pip install -e '.[gpu]'


@dataclasses.dataclass(frozen=True)
class SlurmJob:
    """Resources and site settings of one training job."""

    nodes: int = 1
    gpus_per_node: int = 8
    per: str = "gpu"  # one process per "gpu" or per "node"
    partition: str = ""
    account: str = ""
    qos: str = ""
    time: str = "24:00:00"
    job_name: str = "liquid"
    cpus_per_gpu: int = 8
    log_dir: str = "slurm_logs"
    repo: str = str(REPO)
    venv: str = ""  # "": REPO/.venv-gpu (not dev.sh's CPU-only .venv)
    exclusive: bool = True
    nccl_socket_ifname: str = ""  # e.g. "eth0" or "^lo,docker": NCCL's TCP interfaces
    nccl_ib_hca: str = ""  # e.g. "mlx5": which InfiniBand adapters NCCL uses
    nccl_ib_disable: bool = False  # no InfiniBand: sockets only
    extra_sbatch: tuple[str, ...] = ()  # more "--key=value" #SBATCH options
    xla_flags: bool = True  # launch/xla_flags.py's GPU defaults (the user's XLA_FLAGS win)

    def __post_init__(self):
        if self.per not in ("gpu", "node"):
            raise ValueError(f"per={self.per!r}: expected 'gpu' or 'node'")
        if self.nodes < 1 or self.gpus_per_node < 1:
            raise ValueError(f"nodes={self.nodes}, gpus_per_node={self.gpus_per_node}")

    @property
    def ntasks_per_node(self) -> int:
        return self.gpus_per_node if self.per == "gpu" else 1

    @property
    def cpus_per_task(self) -> int:
        return self.cpus_per_gpu * self.gpus_per_node // self.ntasks_per_node


def _sbatch_lines(job: SlurmJob) -> str:
    opts = [f"--partition={job.partition}" if job.partition else "",
            f"--account={job.account}" if job.account else "",
            f"--qos={job.qos}" if job.qos else "",
            "--exclusive" if job.exclusive else "",
            *job.extra_sbatch]  # fmt: skip
    return "\n".join(f"#SBATCH {o}" for o in opts if o)


def _nccl_lines(job: SlurmJob) -> str:
    lines = []
    if job.nccl_socket_ifname:
        lines.append(f"export NCCL_SOCKET_IFNAME={shlex.quote(job.nccl_socket_ifname)}")
    else:
        lines.append("# export NCCL_SOCKET_IFNAME=eth0   # if NCCL picks the wrong interface")
    if job.nccl_ib_disable:
        lines.append("export NCCL_IB_DISABLE=1")
    elif job.nccl_ib_hca:
        lines.append(f"export NCCL_IB_HCA={shlex.quote(job.nccl_ib_hca)}")
    else:
        lines.append("# export NCCL_IB_HCA=mlx5          # pin InfiniBand adapters")
        lines.append("# export NCCL_IB_DISABLE=1         # no InfiniBand: TCP sockets")
    return "\n".join(lines)


def _jax_lines(job: SlurmJob) -> tuple[str, str]:
    if job.per == "gpu":
        return (
            f"{job.ntasks_per_node} processes per node, one GPU each",
            "# JAX gives process SLURM_LOCALID the GPU of that index (all GPUs stay visible).",
        )
    ids = ",".join(str(i) for i in range(job.gpus_per_node))
    return (
        f"one process per node driving its {job.gpus_per_node} GPUs",
        "# Under SLURM JAX would give each process only GPU $SLURM_LOCALID (0): list them.\n"
        f"export JAX_LOCAL_DEVICE_IDS={ids}",
    )


def _xla_lines(job: SlurmJob) -> str:
    if not job.xla_flags:
        return "# XLA flags: none added (--no_xla_flags); XLA_FLAGS from the environment"
    env = "\n".join(f"export {k}=${{{k}:-{v}}}" for k, v in GPU_ENV.items())
    return f'export XLA_FLAGS="{joined(GPU_XLA_FLAGS)} ${{XLA_FLAGS:-}}"\n{env}'


def render(job: SlurmJob, train_argv: Sequence[str], template: str | None = None) -> str:
    """The sbatch script for ``job`` running ``liquid-jax <train_argv>`` on every task."""
    text = TEMPLATE.read_text() if template is None else template
    venv = job.venv or f"{job.repo}/{GPU_VENV}"
    mode, jax_env = _jax_lines(job)
    # Every task checks that JAX sees its GPU before training (a CPU-only venv would
    # train on the CPU without a word).
    command = shlex.join([f"{venv}/bin/liquid-jax", *train_argv, "--expect_platform=gpu"])
    fields = dict(job_name=job.job_name, nodes=job.nodes, ntasks_per_node=job.ntasks_per_node,
                  gpus_per_node=job.gpus_per_node, cpus_per_task=job.cpus_per_task,
                  time=job.time, log_dir=job.log_dir, extra_sbatch=_sbatch_lines(job),
                  repo=shlex.quote(job.repo), venv=shlex.quote(venv), nccl=_nccl_lines(job),
                  mode_comment=mode, jax_env=jax_env, xla=_xla_lines(job),
                  srun_command=command)  # fmt: skip
    for key, value in fields.items():
        text = text.replace("{{" + key + "}}", str(value))
    if "{{" in text:
        left = text[text.index("{{") :].split("}}")[0] + "}}"
        raise ValueError(f"slurm template: field {left} has no value")
    return text


def sbatch_command(script: str | Path) -> list[str]:
    return ["sbatch", str(script)]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--config", required=True, help="config file[:arg]")
    p.add_argument("--workdir", required=True, help="run directory on the shared file system")
    p.add_argument("--nodes", type=int, default=1)
    p.add_argument("--gpus_per_node", type=int, default=8)
    p.add_argument("--per", choices=["gpu", "node"], default="gpu", help="one process per ...")
    p.add_argument("--partition", default="")
    p.add_argument("--account", default="")
    p.add_argument("--qos", default="")
    p.add_argument("--time", default="24:00:00")
    p.add_argument("--job_name", default="liquid")
    p.add_argument("--cpus_per_gpu", type=int, default=8)
    p.add_argument("--log_dir", default="slurm_logs", help="where %%x-%%j.out goes")
    p.add_argument(
        "--venv",
        default="",
        help=f"venv on the nodes with the [gpu] extra (default REPO/{GPU_VENV})",
    )
    p.add_argument("--no_exclusive", action="store_true")
    p.add_argument("--nccl_socket_ifname", default="")
    p.add_argument("--nccl_ib_hca", default="")
    p.add_argument("--nccl_ib_disable", action="store_true")
    p.add_argument(
        "--no_xla_flags", action="store_true", help="leave out launch/xla_flags.py's GPU defaults"
    )
    p.add_argument("--sbatch", action="append", default=[], help="extra #SBATCH option")
    p.add_argument("--script", default="", help="write the script here (default LOG_DIR/)")
    p.add_argument("--dry_run", action="store_true",
                   help="check the config, print script + command only")  # fmt: skip
    return p


def job_from_args(args) -> SlurmJob:
    return SlurmJob(nodes=args.nodes, gpus_per_node=args.gpus_per_node, per=args.per,
                    partition=args.partition, account=args.account, qos=args.qos,
                    time=args.time, job_name=args.job_name, cpus_per_gpu=args.cpus_per_gpu,
                    log_dir=args.log_dir, venv=args.venv, exclusive=not args.no_exclusive,
                    nccl_socket_ifname=args.nccl_socket_ifname, nccl_ib_hca=args.nccl_ib_hca,
                    nccl_ib_disable=args.nccl_ib_disable,
                    extra_sbatch=tuple(args.sbatch),
                    xla_flags=not args.no_xla_flags)  # fmt: skip


def _absolute_spec(spec: str) -> str:
    """``configs/x.py:arg`` -> ``/abs/configs/x.py:arg`` when the file exists from here."""
    path, colon, arg = spec.partition(":")
    return str(Path(path).absolute()) + colon + arg if Path(path).is_file() else spec


def main(argv: list[str] | None = None) -> int:
    args, rest = _parser().parse_known_args(argv)
    overrides = parse_override_args(rest)
    try:
        config = load_config(args.config)
        check_overrides(config, overrides, check_types=False)
    except ConfigKeyError as e:
        raise SystemExit(f"slurm: {e}") from None
    # The nodes share this file system: what the config names must exist from here.
    check_paths("slurm", config, overrides, args.workdir)
    # The script runs from the checkout and logs where SLURM was asked to: absolute paths
    # keep both independent of the directory sbatch is called from.
    args.log_dir = str(Path(args.log_dir).absolute())
    config, workdir = _absolute_spec(args.config), args.workdir
    if "://" not in workdir:
        workdir = str(Path(workdir).absolute())
    job = job_from_args(args)
    script = render(job, liquid_args(config, workdir, overrides))
    path = Path(args.script or f"{args.log_dir}/{args.job_name}.sbatch")
    runner = Runner(dry_run=args.dry_run)
    if args.dry_run:
        print(f"# ---- {path} ----\n{script}# ---- end of {path} ----")
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        Path(args.log_dir).mkdir(parents=True, exist_ok=True)  # SLURM does not create it
        path.write_text(script)
        runner.note(f"wrote {path}")
    runner.run(sbatch_command(path))
    return 0


if __name__ == "__main__":
    sys.exit(main())
