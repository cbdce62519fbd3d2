"""Bad records: skipped, counted by reason, and turned into an error when too many.

A source raises ``BadRecord(reason, record_id, detail)`` for a record it cannot use
(missing file, undecodable image, empty caption, aspect ratio above 2, bad JSON line,
...). Whoever iterates (the Grain pipeline, ``encode-images``) catches it and calls
``SkipCounter.skip``; good records call ``SkipCounter.ok``. The counter logs the first
few records of each reason, keeps a few record ids per reason for the error message,
and ``check()`` raises ``TooManySkipsError`` once the skipped fraction or count passes
its threshold. ``summary()`` is what a run prints at its end.

The counter's ``state()`` is a small JSON-able dict, so pipelines can checkpoint it and
merge the counters of several worker processes (``SkipCounter.merged``).

Reasons used by liquid_jax (free-form strings; these are the common ones):
``bad_json``, ``missing_field``, ``missing_file``, ``bad_image``, ``aspect_ratio``,
``empty_caption``, ``missing_caption``, ``empty_text``, ``bad_codes``, ``bad_record``,
and ``too_long_<task>`` for image examples that do not fit the sequence length.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from absl import logging

from liquid_jax.errors import UserError


class BadRecord(ValueError):
    """A record that cannot be used. ``reason`` is a short key counted by ``SkipCounter``."""

    def __init__(self, reason: str, record_id: str, detail: str = ""):
        self.reason, self.record_id, self.detail = reason, str(record_id), detail
        super().__init__(f"record {self.record_id}: {reason}" + (f" ({detail})" if detail else ""))

    def __reduce__(self):  # pickles across Grain worker processes
        return (BadRecord, (self.reason, self.record_id, self.detail))


class TooManySkipsError(UserError, RuntimeError):
    """More records were skipped than the configured threshold allows."""


@dataclasses.dataclass(frozen=True)
class SkipPolicy:
    """When skipping turns into an error.

    ``max_fraction``: skipped / seen above this raises, once at least ``min_seen``
    records were seen (or at the end of a finite pass). ``max_count``: more skips than
    this raises at once. ``None`` disables a limit.
    """

    max_fraction: float | None = 0.1
    max_count: int | None = None
    min_seen: int = 1000


class SkipCounter:
    """Counts good and skipped records; see the module docstring.

    Args:
      name: what is being read (a source or pipeline name), for messages.
      policy: thresholds for ``check``.
      keep_examples: record ids remembered per reason (for the error and summary).
      log_first: skips of each reason logged one by one; later ones only counted.
    """

    def __init__(
        self,
        name: str = "data",
        policy: SkipPolicy | None = None,
        *,
        keep_examples: int = 3,
        log_first: int = 3,
    ):
        self.name = name
        self.policy = policy or SkipPolicy()
        self.keep_examples, self.log_first = keep_examples, log_first
        self.seen = 0
        self.counts: dict[str, int] = {}
        self.examples: dict[str, list[str]] = {}

    @property
    def skipped(self) -> int:
        return sum(self.counts.values())

    def ok(self, n: int = 1) -> None:
        self.seen += n

    def skip(self, reason: str, record_id: str, detail: str = "") -> None:
        """Counts one skipped record (it also counts as seen)."""
        self.seen += 1
        count = self.counts.get(reason, 0) + 1
        self.counts[reason] = count
        label = f"{record_id} ({detail})" if detail else str(record_id)
        kept = self.examples.setdefault(reason, [])
        if len(kept) < self.keep_examples:
            kept.append(label)
        if count <= self.log_first:
            more = " (further ones are only counted)" if count == self.log_first else ""
            logging.warning("%s: skipping %s: %s%s", self.name, label, reason, more)

    def skip_error(self, error: BadRecord) -> None:
        self.skip(error.reason, error.record_id, error.detail)

    # -- thresholds and reporting ------------------------------------------------------

    def exceeded(self, final: bool = False) -> str | None:
        """Why the thresholds are exceeded, or None."""
        p = self.policy
        if p.max_count is not None and self.skipped > p.max_count:
            return f"{self.skipped} skipped records exceed max_count={p.max_count}"
        if p.max_fraction is not None and self.seen and (final or self.seen >= p.min_seen):
            fraction = self.skipped / self.seen
            if fraction > p.max_fraction:
                return (
                    f"{self.skipped} of {self.seen} records skipped ({fraction:.1%}) exceeds "
                    f"max_fraction={p.max_fraction:.1%}"
                )
        return None

    def check(self, final: bool = False) -> None:
        """Raises ``TooManySkipsError`` (naming the counts and example records) if the
        thresholds are exceeded. ``final``: the pass is complete, so the fraction counts
        even below ``min_seen`` records."""
        why = self.exceeded(final)
        if why:
            raise TooManySkipsError(f"{self.name}: {why}.\n{self.summary()}")

    def summary(self) -> str:
        """Multi-line: totals, then each reason with its count and example records."""
        if not self.counts:
            return f"{self.name}: {self.seen} records seen, none skipped"
        lines = [f"{self.name}: {self.skipped} of {self.seen} records skipped"]
        for reason, count in sorted(self.counts.items(), key=lambda kv: -kv[1]):
            lines.append(f"  {reason}: {count}, e.g. {'; '.join(self.examples.get(reason, []))}")
        return "\n".join(lines)

    def log_summary(self) -> None:
        (logging.warning if self.counts else logging.info)("%s", self.summary())

    # -- state ---------------------------------------------------------------------

    def state(self) -> dict:
        """JSON-able copy of the counts (no policy)."""
        return {
            "seen": int(self.seen),
            "counts": {k: int(v) for k, v in self.counts.items()},
            "examples": {k: list(v) for k, v in self.examples.items()},
        }

    def set_state(self, state: dict) -> None:
        self.seen = int(state["seen"])
        self.counts = {k: int(v) for k, v in state["counts"].items()}
        self.examples = {k: list(v) for k, v in state["examples"].items()}

    @classmethod
    def merged(
        cls, states: Iterable[dict], name: str = "data", policy: SkipPolicy | None = None
    ) -> SkipCounter:
        """One counter holding the sum of several counters' ``state()`` dicts."""
        out = cls(name, policy)
        for state in states:
            out.seen += int(state["seen"])
            for reason, count in state["counts"].items():
                out.counts[reason] = out.counts.get(reason, 0) + int(count)
            for reason, ids in state["examples"].items():
                kept = out.examples.setdefault(reason, [])
                kept.extend(ids[: max(0, out.keep_examples - len(kept))])
        return out
