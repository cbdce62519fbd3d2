"""The job queue on its own: one worker, in order, bounded, errors kept per job."""

import threading
import time

import pytest

from liquid_jax.errors import InputError
from liquid_jax.serve.jobs import JobQueue, QueueFullError


def wait_all(queue, jobs, timeout=10.0):
    deadline = time.monotonic() + timeout
    while any(queue.status(j.id)["status"] in ("queued", "running") for j in jobs):
        assert time.monotonic() < deadline
        time.sleep(0.005)


def test_jobs_run_one_at_a_time_in_order_with_their_place_in_line():
    queue = JobQueue(max_queued=8)
    gate, order = threading.Event(), []

    def work(name):
        def fn(report):
            gate.wait(5)
            report(1, 2)
            order.append(name)
            return name.upper()

        return fn

    jobs = [queue.submit("t", work(name)) for name in "abc"]
    time.sleep(0.05)  # the worker has taken "a" and waits at the gate
    assert [queue.status(j.id)["status"] for j in jobs] == ["running", "queued", "queued"]
    assert [queue.status(j.id).get("ahead") for j in jobs[1:]] == [1, 2]
    gate.set()
    wait_all(queue, jobs)
    assert order == ["a", "b", "c"]
    states = [queue.status(j.id) for j in jobs]
    assert [s["result"] for s in states] == ["A", "B", "C"]
    assert all((s["done"], s["total"]) == (1, 2) for s in states)
    for first, second in zip(jobs, jobs[1:]):
        assert first.finished <= second.started
    queue.close(5)


def test_a_full_queue_refuses_and_old_results_are_dropped():
    queue = JobQueue(max_queued=2, max_kept=2)
    gate = threading.Event()
    held = [queue.submit("t", lambda report: gate.wait(5)) for _ in range(2)]
    with pytest.raises(QueueFullError, match="2 requests are already waiting"):
        queue.submit("t", lambda report: None)
    gate.set()
    wait_all(queue, held)
    later = [queue.submit("t", lambda report, i=i: i) for i in range(2)]
    wait_all(queue, later)
    assert queue.status(held[0].id) is None and queue.status(held[1].id) is None
    assert [queue.status(j.id)["result"] for j in later] == [0, 1]
    queue.close(5)


def test_errors_stay_with_their_job_and_the_worker_goes_on():
    queue = JobQueue()

    def user_mistake(report):
        raise InputError("t2i: the prompt is too long")

    def bug(report):
        raise RuntimeError("boom")

    jobs = [queue.submit("t", fn) for fn in (user_mistake, bug, lambda report: "fine")]
    wait_all(queue, jobs)
    states = [queue.status(j.id) for j in jobs]
    assert states[0] == dict(
        id=jobs[0].id, kind="t", status="error", done=0, total=0,
        error="t2i: the prompt is too long",
    )  # fmt: skip
    assert states[1]["error"] == "internal error (RuntimeError)"
    assert states[2]["status"] == "done" and states[2]["result"] == "fine"
    assert queue.status("../../etc/passwd") is None
    queue.close(5)
