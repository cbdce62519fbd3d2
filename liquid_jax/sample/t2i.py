"""Text-to-image as Liquid's reference sampler does it, batched and compiled.

Each sample is a conditional row ``<bos>{caption}{instruction}<boi>`` and, with guidance,
an unconditional row ``<bos><unconditional><boi>`` (``formats.t2i_prompt``). Both rows
are fed the token drawn from ``uncond + scale * (cond - uncond)``; only image codes can
be drawn (``[image_offset, image_offset + num_image_codes)``), and exactly ``h * w`` are
drawn for an ``h x w`` grid. With ``size_prefix`` (models trained multi-resolution) both
rows carry ``Image Size: Width is {w} Height is {h}.`` in pixels, which is how such a
model is told the aspect ratio. Scale 1 (or None) drops the unconditional rows.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np

from liquid_jax.data.formats import T2I_INSTRUCTIONS, t2i_prompt
from liquid_jax.data.tokenizers.base import TextTokenizer
from liquid_jax.data.vocab import VocabLayout
from liquid_jax.errors import InputError
from liquid_jax.sample.decode_loop import DecodeSpec, SamplingParams

# The reference evaluation settings (Liquid's T2I scripts).
CFG_SCALE = 7.0
TEMPERATURE = 0.99
TOP_K = 4096
TOP_P = 0.96
INSTRUCTION = T2I_INSTRUCTIONS[0]


@dataclasses.dataclass(frozen=True)
class T2IResult:
    """codes: int32[N, h, w]; images: uint8[N, h*f, w*f, 3] or None (no VQGAN);
    prompts: the caption of each sample; sample_ids: int[N] (its random stream)."""

    codes: np.ndarray
    images: np.ndarray | None
    prompts: list[str]
    sample_ids: np.ndarray


def parse_grid(grid) -> tuple[int, int]:
    """``(h, w)``, ``"HxW"``, ``"N"`` or an int N (square) -> (h, w) of positive ints."""
    if isinstance(grid, str):
        m = re.fullmatch(r"\s*(\d+)\s*(?:[xX*,]\s*(\d+))?\s*", grid)
        if not m:
            raise InputError(f"t2i: grid {grid!r} is not HxW (e.g. 32x32) or N")
        h = int(m.group(1))
        grid = (h, int(m.group(2)) if m.group(2) else h)
    elif isinstance(grid, (int, np.integer)):
        grid = (int(grid), int(grid))
    h, w = (int(x) for x in grid)
    if h < 1 or w < 1:
        raise InputError(f"t2i: grid {h}x{w} must have positive sides")
    return h, w


def uses_cfg(cfg_scale) -> bool:
    """Guidance is off for scale None or 1 (the unconditional rows would change nothing)."""
    return cfg_scale is not None and float(cfg_scale) != 1.0


def t2i_rows(
    tokenizer: TextTokenizer,
    layout: VocabLayout,
    caption: str,
    *,
    cfg: bool,
    instruction: str = INSTRUCTION,
    image_size: tuple[int, int] | None = None,
) -> list[np.ndarray]:
    """One sample's prompt rows: [cond] or [cond, uncond], each int32[P] ending in <boi>."""
    rows = [t2i_prompt(tokenizer, layout, caption, instruction=instruction, image_size=image_size)]
    if cfg:
        rows.append(
            t2i_prompt(tokenizer, layout, caption, unconditional=True, image_size=image_size)
        )
    return rows


def t2i_decode_spec(
    layout: VocabLayout,
    grid: tuple[int, int],
    *,
    cfg_scale=CFG_SCALE,
    temperature: float = TEMPERATURE,
    top_k: int = TOP_K,
    top_p: float = TOP_P,
    cfg_min_p: float = 0.0,
) -> tuple[DecodeSpec, SamplingParams]:
    """The loop for one image of ``grid`` codes; top-k is clamped to the codebook size.

    ``temperature <= 0`` decodes greedily (the reference always samples). ``cfg_min_p``:
    guidance only among codes of conditional probability >= ``cfg_min_p`` times the
    best one's (``filters.guide``; 0, the reference: every code).
    """
    if layout.num_image_codes < 1:
        raise InputError("t2i: the vocabulary layout has no image codes")
    if not 0.0 < float(top_p) <= 1.0:
        raise InputError(f"t2i: top_p={top_p} must be in (0, 1]")
    if not 0.0 <= float(cfg_min_p) < 1.0:
        raise InputError(f"t2i: cfg_min_p={cfg_min_p} must be in [0, 1)")
    lo = layout.image_offset
    top_k = min(int(top_k), layout.num_image_codes) if top_k and top_k > 0 else 0
    spec = DecodeSpec(
        max_new_tokens=grid[0] * grid[1],
        token_range=(lo, lo + layout.num_image_codes),
        greedy=float(temperature) <= 0.0,
        # Keeping every code is no filter: skip the top-k pass.
        top_k=0 if top_k == layout.num_image_codes else top_k,
        nucleus=float(top_p) < 1.0,
        cfg=uses_cfg(cfg_scale),
        pad_id=layout.pad_id,
    )
    scale = 1.0 if cfg_scale is None else float(cfg_scale)
    return spec, SamplingParams.of(max(float(temperature), 0.0), top_p, scale, cfg_min_p)


def codes_from_tokens(layout: VocabLayout, tokens: np.ndarray, grid: tuple[int, int]):
    """tokens: int[N, h*w] image token ids -> codes int32[N, h, w]."""
    return layout.codes_of(tokens).reshape(-1, *grid)
