"""One worker thread draining a queue of jobs, so that every request runs on the one
loaded (and compiled) model, one at a time, in the order they came.

    queue = JobQueue(max_queued=32, max_kept=64)
    job = queue.submit("t2i", lambda report: run(report))   # report(done, total)
    queue.get(job.id).snapshot()   # {"status": "queued", "ahead": 1, ...}

A job's function reports progress through ``report(done, total)``; what it returns is
the job's result. A ``UserError`` it raises becomes the job's error message; any other
exception is logged with its traceback and reported as an internal error, and the
worker goes on with the next job. Job ids are random hex strings, looked up in a dict.
"""

from __future__ import annotations

import collections
import queue
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

from absl import logging

from liquid_jax.errors import is_user_error

Report = Callable[[int, int], None]


class QueueFullError(RuntimeError):
    """Too many requests are waiting; the server answers 503."""


class Job:
    """One request: its state, progress and outcome (read by any thread)."""

    def __init__(self, kind: str, fn: Callable[[Report], Any]):
        self.id = secrets.token_hex(16)
        self.kind, self.fn = kind, fn
        self.status = "queued"  # -> running -> done | error
        self.done = self.total = 0
        self.result: Any = None
        self.error: str | None = None
        self.submitted = time.monotonic()
        self.started: float | None = None
        self.finished: float | None = None
        self._lock = threading.Lock()

    def report(self, done: int, total: int) -> None:
        with self._lock:
            self.done, self.total = int(done), int(total)

    def snapshot(self, ahead: int = 0) -> dict:
        """The job as JSON: status, jobs ``ahead`` of it while queued, progress
        (``done`` of ``total`` steps), ``result`` or ``error`` once finished."""
        with self._lock:
            out = dict(id=self.id, kind=self.kind, status=self.status)
            out.update(done=self.done, total=self.total)
            if self.status == "queued":
                out["ahead"] = ahead
            if self.status == "done":
                out["result"] = self.result
                out["seconds"] = round(self.finished - self.started, 3)
            if self.status == "error":
                out["error"] = self.error
            return out


class JobQueue:
    """Jobs run by one daemon thread, first come first served."""

    def __init__(self, max_queued: int = 32, max_kept: int = 64):
        self.max_queued, self.max_kept = int(max_queued), int(max_kept)
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._jobs: dict[str, Job] = {}
        self._pending: collections.deque[str] = collections.deque()  # queued or running
        self._finished: collections.deque[str] = collections.deque()
        self._lock = threading.Lock()
        self._worker = threading.Thread(target=self._drain, name="liquid-serve-worker", daemon=True)
        self._worker.start()

    def submit(self, kind: str, fn: Callable[[Report], Any]) -> Job:
        """Queues ``fn``; ``QueueFullError`` when ``max_queued`` jobs are already pending."""
        job = Job(kind, fn)
        with self._lock:
            if len(self._pending) >= self.max_queued:
                raise QueueFullError(
                    f"{len(self._pending)} requests are already waiting; try again shortly"
                )
            self._jobs[job.id] = job
            self._pending.append(job.id)
        self._queue.put(job)
        return job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def status(self, job_id: str) -> dict | None:
        """``job.snapshot`` with the number of jobs ahead of it, or None if unknown."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return None
            ahead = self._pending.index(job_id) if job_id in self._pending else 0
        return job.snapshot(ahead)

    def close(self, timeout: float | None = None) -> None:
        """Lets the worker finish the jobs already queued, then stop."""
        self._queue.put(None)
        self._worker.join(timeout)

    def _drain(self) -> None:
        while (job := self._queue.get()) is not None:
            self._run(job)

    def _run(self, job: Job) -> None:
        with job._lock:
            job.status, job.started = "running", time.monotonic()
        try:
            result, status, error = job.fn(job.report), "done", None
        except Exception as e:  # the worker must outlive any one request
            if is_user_error(e):
                result, status, error = None, "error", str(e)
            else:
                logging.exception("serve: %s job %s failed", job.kind, job.id)
                result, status, error = None, "error", f"internal error ({type(e).__name__})"
        with job._lock:
            job.result, job.status, job.error = result, status, error
            job.finished = time.monotonic()
            job.fn = None  # frees what the request held (an uploaded image)
        with self._lock:
            self._pending.remove(job.id)
            self._finished.append(job.id)
            while len(self._finished) > self.max_kept:
                self._jobs.pop(self._finished.popleft(), None)
