"""Local multi-process launcher: the environment of each process, and a failing process
stopping the other one. A 2-process smoke training run through the launcher (to a
checkpoint, resumed, equal to one process) is ``tests/train/test_multihost.py``."""

import io
import sys

from launch.local import process_env, run_local


def test_process_env_sets_the_coordinator_and_fake_devices():
    env = process_env({"XLA_FLAGS": "--xla_foo=1 --xla_force_host_platform_device_count=8"},
                      index=1, count=3, port=1234, devices_per_process=2)  # fmt: skip
    assert env["LIQUID_COORDINATOR"] == "localhost:1234"
    assert (env["LIQUID_NUM_PROCESSES"], env["LIQUID_PROCESS_ID"]) == ("3", "1")
    assert env["XLA_FLAGS"] == "--xla_foo=1 --xla_force_host_platform_device_count=2"
    assert env["JAX_PLATFORMS"] == "cpu"


def test_a_failing_process_stops_the_others():
    # Process 1 fails at once; process 0 would otherwise sleep for a minute.
    code = ("import os, sys, time; i = int(os.environ['LIQUID_PROCESS_ID']); "
            "print('hello', i, flush=True); sys.exit(3) if i else time.sleep(60)")  # fmt: skip
    out = io.StringIO()
    rc = run_local([], num_processes=2, out=out, grace_s=2, timeout_s=30,
                   program=[sys.executable, "-c", code])  # fmt: skip
    text = out.getvalue()
    assert rc == 3, text
    assert "[p1] hello 1" in text and "[p0] hello 0" in text
    assert "[local] p1 exited with 3" in text
    assert "[local] p0 exited with 0" not in text  # stopped, not finished
