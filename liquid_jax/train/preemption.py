"""SIGTERM (preemption) handling: finish the step, checkpoint, exit cleanly."""

from __future__ import annotations

import signal

from absl import logging


class PreemptionGuard:
    """``guard.requested`` turns True once SIGTERM arrives; the loop then saves and stops."""

    def __init__(self):
        self.requested = False
        self._previous = None

    def __enter__(self) -> PreemptionGuard:
        try:
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        except ValueError:  # not the main thread: leave signals alone
            self._previous = None
        return self

    def _handle(self, signum, frame) -> None:
        logging.warning("SIGTERM: checkpointing after this step, then stopping")
        self.requested = True

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
