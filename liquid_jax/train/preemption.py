"""SIGTERM (preemption) handling: every process finishes the same step, checkpoints it
and exits cleanly.

A scheduler may signal one host of a pod (or signal them a few steps apart). A host that
stopped alone would leave the others waiting in the next collective or save, so the
decision is collective: at each step boundary the processes vote (``any_process``: the
coordination service, no device collective) and all stop at the first step at which any
of them had the signal.
"""

from __future__ import annotations

import signal

from absl import logging

from liquid_jax.parallel import any_process, forget_vote


class PreemptionGuard:
    """``guard.requested``: this process got SIGTERM; ``guard.should_stop(step)``: some
    process did, by the vote at ``step`` (every process calls it at every step, with the
    same steps; the answer is the same on all of them)."""

    def __init__(self, key: str = "liquid_stop"):
        self.requested = False
        self._key = key
        self._previous = None
        self._last_vote: str | None = None

    def __enter__(self) -> PreemptionGuard:
        try:
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        except ValueError:  # not the main thread: leave signals alone
            self._previous = None
        return self

    def _handle(self, signum, frame) -> None:
        logging.warning("SIGTERM: checkpointing after this step, then stopping")
        self.requested = True

    def should_stop(self, step: int) -> bool:
        """True when any process has had SIGTERM by the time it finished ``step``."""
        key = f"{self._key}_{step}"
        stop = any_process(self.requested, key)
        if self._last_vote is not None:
            forget_vote(self._last_vote)  # everyone passed this vote's barrier: read
        self._last_vote = key
        if stop and not self.requested:
            logging.warning("another process got SIGTERM: checkpointing step %d, then stopping",
                            step)  # fmt: skip
        return stop

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
