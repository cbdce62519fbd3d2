"""Decoding in phases: each phase's steps attend over a cache just long enough for them.

A decoding step's attention reads every slot of the ``KVCache`` it is given, filled or
not; with one cache sized for the whole generation, a T2I step reads on average twice
the keys and values it needs (1024 codes after a short prompt). So the decode loop runs
in phases, each a compiled loop over a cache of static length: phase ``p`` holds the
prompt and the tokens up to its last step, and between phases the cache grows
(``KVCache.grow``: a copy once per phase). With ``n`` equal phases a step reads the
filled part plus on average ``max_new_tokens / 2n`` unfilled slots.

Steps are counted as ``DecodeState.step``: step 0 is the draw after the prefill; step
``s >= 1`` feeds token ``s - 1`` into slot ``prompt + s - 1`` and attends slots
``[0, prompt + s)``.
"""

from __future__ import annotations

import dataclasses

# Phases chosen automatically: one per 256 tokens, at most 4 (each phase is one more
# compiled loop; 4 phases leave about 1/8 of an image's cache unfilled on average).
TOKENS_PER_PHASE = 256
MAX_AUTO_PHASES = 4


@dataclasses.dataclass(frozen=True)
class Phase:
    """Steps ``[first, end)`` of the loop over a cache of ``cache_len`` slots."""

    first: int
    end: int
    cache_len: int

    @property
    def steps(self) -> int:
        return self.end - self.first


def auto_phases(max_new_tokens: int) -> int:
    """One phase per ``TOKENS_PER_PHASE`` tokens, between 1 and ``MAX_AUTO_PHASES``."""
    return max(1, min(MAX_AUTO_PHASES, max_new_tokens // TOKENS_PER_PHASE))


def plan_phases(prompt_len: int, max_new_tokens: int, phases: int = 0) -> tuple[Phase, ...]:
    """The loop's steps ``[1, max_new_tokens)`` in ``phases`` near-equal parts (0: auto).

    Returns at least one phase (an empty one when there is no step after the prefill's
    draw), each with ``cache_len = prompt_len + end - 1``; the first phase's cache is the
    one the prefill fills.
    """
    if phases < 0:
        raise ValueError(f"decode: phases={phases} must be >= 0 (0: automatic)")
    steps = max_new_tokens - 1
    count = max(1, min(phases or auto_phases(max_new_tokens), steps))
    bounds = [1 + (steps * i) // count for i in range(count + 1)]
    return tuple(Phase(a, b, prompt_len + b - 1) for a, b in zip(bounds[:-1], bounds[1:]))
