"""Two ``liquid-jax train`` processes over localhost (``launch/local.py``'s environment,
2 fake CPU devices each) stop together: SIGTERM to ONE of them mid-run makes both finish
the same step, save that step's checkpoint (every host's data position included) and
exit 0, and a rerun resumes from it.

Without the vote at each step (``train/preemption.py``) the signalled process saves and
leaves while the other waits in the next step's collective until a timeout.
"""

import contextlib
import json
import os
import re
import signal
import subprocess
import time

from launch.common import liquid_args
from launch.local import REPO, free_port, process_command, process_env, run_local

OVERRIDES = {"log_every_steps": 1, "checkpoint_every_steps": 1000, "eval_every_steps": 0}
STOPPED = re.compile(r"stopped by SIGTERM at step (\d+)")


def _argv(workdir, steps):
    return liquid_args(f"configs/smoke.py:steps={steps}", str(workdir), OVERRIDES)


def _logged_step(workdir) -> int:
    """The last step process 0 wrote to metrics.jsonl (0 before the first)."""
    path = workdir / "metrics.jsonl"
    step = 0
    if path.exists():
        for line in path.read_text().splitlines():
            with contextlib.suppress(json.JSONDecodeError):  # a line being written
                step = max(step, json.loads(line).get("step", 0))
    return step


def test_sigterm_to_one_process_stops_both_at_the_same_step(tmp_path):
    workdir = tmp_path / "run"
    port, logs, procs = free_port(), [tmp_path / f"p{i}.log" for i in range(2)], []
    for i in range(2):
        procs.append(subprocess.Popen(
            process_command(_argv(workdir, 10_000)),
            env=process_env(os.environ, i, 2, port, devices_per_process=2), cwd=REPO,
            stdout=logs[i].open("w"), stderr=subprocess.STDOUT,
        ))  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        while _logged_step(workdir) < 2:
            codes = [p.poll() for p in procs]
            assert codes == [None, None], [c for c in codes] + [f.read_text()[-2000:] for f in logs]
            assert time.monotonic() < deadline, logs[0].read_text()[-2000:]
            time.sleep(0.2)
        procs[1].send_signal(signal.SIGTERM)  # the scheduler's notice reaches one host
        codes = [p.wait(timeout=120) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    texts = [f.read_text() for f in logs]
    assert codes == [0, 0], [t[-3000:] for t in texts]
    assert all("Traceback" not in t for t in texts), texts[0][-3000:] + texts[1][-3000:]
    stops = [STOPPED.findall(t) for t in texts]
    assert len(stops[0]) == len(stops[1]) == 1, stops
    step = int(stops[0][0])
    assert stops[1] == [str(step)] and 2 <= step < 10_000
    assert "another process got SIGTERM" in texts[0]  # process 0 stopped on the vote
    # The checkpoint of that step is the newest and complete: committed (no temporary
    # name) with both hosts' data positions.
    ckpt = workdir / "checkpoints"
    assert max(int(n) for n in os.listdir(ckpt) if n.isdigit()) == step
    assert not [n for n in os.listdir(ckpt) if "tmp" in n]
    data = set(os.listdir(ckpt / str(step) / "data"))
    assert {"process_0-of-2.json", "process_1-of-2.json", "commit_success.txt"} <= data, data

    # A rerun (one more step) starts from that checkpoint on both processes.
    out = _Out()
    rc = run_local(_argv(workdir, step + 1), num_processes=2, devices_per_process=2, out=out,
                   timeout_s=240)  # fmt: skip
    assert rc == 0, out.text[-3000:]
    assert out.text.count(f"resumed from step {step}") == 2, out.text[-3000:]
    assert _logged_step(workdir) == step + 1


class _Out:
    """A text sink for ``run_local`` (its lines, kept)."""

    def __init__(self):
        self.text = ""

    def write(self, s):
        self.text += s

    def flush(self):
        pass
