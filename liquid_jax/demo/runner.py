"""Stage bookkeeping for the demo: headers, wall times, ETA, done markers, resuming.

Each stage writes ``WORKDIR/stages/NAME.json`` (its wall time and a small JSON result)
when it finishes; a rerun skips stages with a marker and returns their stored result.
An interrupted stage has no marker and runs again, picking up its own outputs (train
loops resume from their checkpoints, code extraction from its last finished chunk).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable

from absl import logging

from liquid_jax.progress import clock

MARKERS = "stages"


class StageRunner:
    """Runs named stages in order, each at most once per workdir.

    ``budget_s``: planned seconds per stage name; it turns the time spent so far into a
    whole-demo ETA in each stage header and footer.
    """

    def __init__(self, workdir: str, budget_s: dict[str, float], names: list[str]):
        self.workdir, self.budget, self.names = workdir, dict(budget_s), list(names)
        self.t0 = time.perf_counter()
        self.walls: dict[str, float] = {}
        os.makedirs(os.path.join(workdir, MARKERS), exist_ok=True)

    def marker(self, name: str) -> str:
        return os.path.join(self.workdir, MARKERS, f"{name}.json")

    def done(self, name: str) -> bool:
        return os.path.exists(self.marker(name))

    def _eta(self, after: str) -> float:
        left = self.names[self.names.index(after) + 1 :]
        return sum(self.budget.get(n, 0.0) for n in left if not self.done(n))

    def run(self, name: str, title: str, fn: Callable[[], dict]) -> dict:
        """Runs ``fn`` (-> JSON-serialisable dict) unless ``name`` finished before."""
        k, n = self.names.index(name) + 1, len(self.names)
        if self.done(name):
            with open(self.marker(name)) as f:
                saved = json.load(f)
            self.walls[name] = saved["wall_s"]
            logging.info("== stage %d/%d %s: done before (%.1fs), skipped", k, n, title,
                         saved["wall_s"])  # fmt: skip
            return saved["result"]
        elapsed = time.perf_counter() - self.t0
        logging.info(
            "== stage %d/%d: %s (planned %s; demo elapsed %s, ETA %s)",
            k, n, title, clock(self.budget.get(name, 0)), clock(elapsed),
            clock(self.budget.get(name, 0) + self._eta(name)),
        )  # fmt: skip
        t = time.perf_counter()
        result = fn() or {}
        wall = time.perf_counter() - t
        self.walls[name] = wall
        tmp = self.marker(name) + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"wall_s": wall, "result": result}, f, indent=2)
        os.replace(tmp, self.marker(name))  # atomic: a marker is whole or absent
        logging.info(
            "== stage %d/%d %s: done in %s (demo elapsed %s, ETA %s)",
            k, n, title, clock(wall), clock(time.perf_counter() - self.t0),
            clock(self._eta(name)),
        )  # fmt: skip
        return result
