"""What a decode is asked to do: ``DecodeSpec`` (static: fixes the compiled program)
and ``SamplingParams`` (traced scalars: changing them does not recompile)."""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
from flax import struct


@dataclasses.dataclass(frozen=True)
class DecodeSpec:
    """What fixes the compiled program's shapes and control flow (one compile each).

    Attributes:
      max_new_tokens: tokens to generate per row (the prompt's first included).
      token_range: ``(lo, hi)``: only ids in ``[lo, hi)`` can be drawn (image codes for
        T2I, the text vocabulary for text; never the vocabulary padding).
      greedy: argmax instead of a draw.
      top_k: candidates per draw (<= 0: off).
      nucleus: whether top-p may be below 1 (False skips the top-p pass).
      cfg: rows come in (cond, uncond) pairs mixed with guidance.
      eos_ids: a row is done after drawing one of these (empty: never).
      pad_id: what a done row emits.
      phases: the loop runs in this many phases over caches sized to each
        (``phases.plan_phases``; 0: automatic, 1: one cache for the whole generation).
    """

    max_new_tokens: int
    token_range: tuple[int, int]
    greedy: bool = True
    top_k: int = 0
    nucleus: bool = False
    cfg: bool = False
    eos_ids: tuple[int, ...] = ()
    pad_id: int = 0
    phases: int = 0

    def __post_init__(self):
        lo, hi = self.token_range
        if self.max_new_tokens < 1:
            raise ValueError(f"decode: max_new_tokens={self.max_new_tokens} must be >= 1")
        if not 0 <= lo < hi:
            raise ValueError(f"decode: token_range={self.token_range} is empty or negative")
        if self.phases < 0:
            raise ValueError(f"decode: phases={self.phases} must be >= 0 (0: automatic)")


@struct.dataclass
class SamplingParams:
    """Traced scalars: changing them does not recompile."""

    temperature: jax.Array
    top_p: jax.Array
    cfg_scale: jax.Array
    cfg_min_p: jax.Array  # filters.guide's min_p (0: plain guidance)

    @classmethod
    def of(cls, temperature=1.0, top_p=1.0, cfg_scale=1.0, cfg_min_p=0.0) -> SamplingParams:
        f = lambda x: np.float32(x)
        return cls(f(temperature), f(top_p), f(cfg_scale), f(cfg_min_p))
