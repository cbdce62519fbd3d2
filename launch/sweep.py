"""Run a sweep: one training run per point of a sweep file, then one table of results.

    python launch/sweep.py --config configs/smoke.py:steps=200 \\
        --sweep configs/sweeps/scaling.py --workdir /tmp/scaling --parallel 2
    # on a cluster: print one launcher command per point instead of running
    python launch/sweep.py ... --launcher slurm --launcher_args='--nodes 1 --partition gpu'
    # later, gather what the cluster runs wrote
    python launch/sweep.py ... --collect_only

Every key of every point is checked against the config before anything runs (an unknown
key names itself and the valid keys at its level). Local runs are subprocesses of
``python -m liquid_jax.cli train`` with workdir ``WORKDIR/<point name>`` and output in
``WORKDIR/<point name>/log.txt``; a failed point is reported as failed and the others
still run. Finished points (``sweep_run.json`` with status ok) are skipped on a rerun
unless ``--force``. Results: ``WORKDIR/sweep_results.{csv,md,png}``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TextIO

if __package__ in (None, ""):  # run as `python launch/sweep.py`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from launch.common import (  # noqa: E402
    REPO,
    ConfigKeyError,
    check_overrides,
    liquid_args,
    load_config,
    override_flags,
)
from launch.sweep_report import error_tail, final_metrics, write_report  # noqa: E402
from launch.sweep_spec import Run, load_sweep, varying_keys  # noqa: E402

STATUS = "sweep_run.json"


class SweepError(ValueError):
    """The sweep is invalid (unknown keys, bad values); nothing was run."""


def validate(config, runs: Sequence[Run]) -> None:
    """Checks every override of every run against ``config``; all problems in one error."""
    problems = []
    for run in runs:
        try:
            check_overrides(config, run.overrides)
        except ConfigKeyError as e:
            problems.append(f"  run {run.name!r}: {e}")
    if problems:
        raise SweepError("invalid sweep, nothing was run:\n" + "\n".join(problems))


def run_command(run: Run, config: str, workdir: str, python: str = sys.executable) -> list[str]:
    return [python, "-m", "liquid_jax.cli",
            *liquid_args(config, f"{workdir}/{run.name}", run.overrides)]  # fmt: skip


def cluster_command(run: Run, config: str, workdir: str, launcher: str, extra: str = "") -> str:
    """The command that runs one point with ``launch/tpu_pod.py train`` or ``slurm.py``."""
    script = {"tpu": "launch/tpu_pod.py train", "slurm": "launch/slurm.py"}[launcher]
    name = ["--job_name", f"sweep-{run.name}"] if launcher == "slurm" else []
    args = [f"--config={config}", f"--workdir={workdir}/{run.name}", *name,
            *shlex.split(extra), *override_flags(run.overrides)]  # fmt: skip
    return f"python {script} " + shlex.join(args)


def _status(workdir: Path) -> dict | None:
    try:
        return json.loads((workdir / STATUS).read_text())
    except (OSError, ValueError):
        return None


def run_local(
    runs: Sequence[Run],
    config: str,
    workdir: str | Path,
    parallel: int = 1,
    env: Mapping[str, str] | None = None,
    force: bool = False,
    timeout_s: float | None = None,
    out: TextIO | None = None,
) -> dict[str, dict]:
    """Runs the points as subprocesses, ``parallel`` at a time. Returns name -> status
    (``status`` ok|failed|timeout, ``returncode``, ``wall_s``)."""
    out = out or sys.stdout
    workdir = Path(workdir)
    env = dict(os.environ if env is None else env)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    results, queue, active = {}, [], {}
    for run in runs:
        prev = _status(workdir / run.name)
        if prev and prev.get("status") == "ok" and not force:
            print(f"[sweep] {run.name}: finished before, skipped (--force reruns)", file=out)
            results[run.name] = prev
        else:
            queue.append(run)
    while queue or active:
        while queue and len(active) < max(1, parallel):
            run = queue.pop(0)
            rundir = workdir / run.name
            rundir.mkdir(parents=True, exist_ok=True)
            cmd = run_command(run, config, str(workdir))
            print(f"[sweep] start {run.name}: {shlex.join(cmd)}", file=out, flush=True)
            log = open(rundir / "log.txt", "w")  # noqa: SIM115 (closed when the run ends)
            proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
            active[run.name] = (proc, log, time.monotonic(), cmd)
        time.sleep(0.2)
        for name, (proc, log, t0, cmd) in list(active.items()):
            wall = time.monotonic() - t0
            if proc.poll() is None and not (timeout_s and wall > timeout_s):
                continue
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            log.close()
            status = "ok" if proc.returncode == 0 else "failed"
            if timeout_s and wall > timeout_s and proc.returncode != 0:
                status = "timeout"
            results[name] = dict(status=status, returncode=proc.returncode,
                                 wall_s=round(wall, 2), command=cmd)  # fmt: skip
            (workdir / name / STATUS).write_text(json.dumps(results[name], indent=1))
            print(f"[sweep] {status:7s} {name} ({wall:.1f} s)", file=out, flush=True)
            del active[name]
    return results


def collect(runs: Sequence[Run], workdir: str | Path, statuses: Mapping[str, dict] | None = None):
    """One row per run: name, status, swept values, final metrics, wall time, error."""
    workdir, statuses = Path(workdir), statuses or {}
    rows = []
    for run in runs:
        rundir = workdir / run.name
        st = statuses.get(run.name) or _status(rundir) or {}
        metrics = final_metrics(rundir) or {}
        status = st.get("status") or ("ok" if metrics else "missing")
        row = {"name": run.name, "status": status, **run.overrides, **metrics}
        if "wall_s" in st:
            row["wall_s"] = st["wall_s"]
        if status != "ok":
            row["error"] = error_tail(rundir / "log.txt")
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--config", required=True, help="base config file[:arg]")
    p.add_argument("--sweep", required=True, help="sweep file[:arg] defining get_sweep()")
    p.add_argument("--workdir", required=True, help="runs go to WORKDIR/<point name>")
    p.add_argument("--parallel", type=int, default=1, help="local runs at a time")
    p.add_argument("--launcher", choices=["local", "tpu", "slurm"], default="local")
    p.add_argument("--launcher_args", default="", help="extra flags for tpu_pod.py / slurm.py")
    p.add_argument("--print_only", action="store_true", help="print the commands, run nothing")
    p.add_argument("--collect_only", action="store_true", help="only gather results")
    p.add_argument("--force", action="store_true", help="rerun points that finished")
    p.add_argument("--timeout_s", type=float, default=None, help="per local run")
    args = p.parse_args(argv)

    try:
        module, runs = load_sweep(args.sweep)
        validate(load_config(args.config), runs)
    except (SweepError, ValueError, FileNotFoundError) as e:  # bad sweep: nothing ran
        print(f"sweep: {e}", file=sys.stderr)
        return 2
    print(f"[sweep] {len(runs)} runs: {', '.join(r.name for r in runs)}")
    workdir = args.workdir
    if args.launcher != "local" or args.print_only:
        for run in runs:
            if args.launcher == "local":
                print(shlex.join(run_command(run, args.config, workdir)))
            else:
                print(cluster_command(run, args.config, workdir, args.launcher, args.launcher_args))
        return 0
    statuses = {} if args.collect_only else run_local(
        runs, args.config, workdir, args.parallel, force=args.force, timeout_s=args.timeout_s
    )  # fmt: skip
    rows = collect(runs, workdir, statuses)
    extra = module.report(rows) if hasattr(module, "report") else ""
    paths = write_report(rows, varying_keys(runs), workdir, extra, getattr(module, "PLOT_X", None))
    print(Path(paths["md"]).read_text())
    print(f"[sweep] wrote {', '.join(paths.values())}")
    return 0 if all(r["status"] == "ok" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
