"""Shapes-world records, each a pure function of (seed, split, index).

Each record draws from its own generator ``default_rng([seed, stream, split, index])``,
so records can be made in any order or in parallel, a different seed changes every
record, and the splits are disjoint streams: with the default grain images never repeat
across splits (every background carries per-pixel grain); without grain two images can
coincide when their shapes land on the same pixels. A test caption may repeat a train
caption either way.
"""

from __future__ import annotations

import numpy as np

from liquid_jax.data.shapes.captions import caption_scene
from liquid_jax.data.shapes.draw import render_scene
from liquid_jax.data.shapes.sample import sample_scene
from liquid_jax.data.shapes.scene import GRAIN, TEXTURES
from liquid_jax.data.shapes.text import text_document
from liquid_jax.errors import ConfigError

SPLITS = ("train", "validation", "test")
_IMAGE_STREAM, _TEXT_STREAM = 0, 1


def _rng(seed: int, stream: int, split: str, index: int) -> np.random.Generator:
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; known: {SPLITS}")
    return np.random.default_rng([seed, stream, SPLITS.index(split), index])


def image_text_record(
    seed: int,
    split: str,
    index: int,
    image_size: int = 32,
    *,
    textures=TEXTURES,
    grain: float = GRAIN,
    **style,
) -> dict:
    """One captioned image (``textures``, ``grain`` and the other ``style`` keys of
    ``shapes.sample.STYLE_DEFAULTS``: see ``shapes.sample.sample_scene``).

    Returns ``{"image": uint8[S, S, 3], "caption": str, "attributes": dict (Scene.to_dict,
    JSON-serialisable), "index": int}``.
    """
    rng = _rng(seed, _IMAGE_STREAM, split, index)
    scene = sample_scene(rng, image_size, textures=textures, grain=grain, split=split, **style)
    caption = caption_scene(scene, rng)
    image, _ = render_scene(scene)
    return {"image": image, "caption": caption, "attributes": scene.to_dict(), "index": index}


def text_record(seed: int, split: str, index: int) -> dict:
    """One text-only document: ``{"text": str, "index": int}``."""
    return {"text": text_document(_rng(seed, _TEXT_STREAM, split, index)), "index": index}
