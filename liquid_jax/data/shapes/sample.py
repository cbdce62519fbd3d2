"""Sampling a scene of the shapes world from a seed, in a world's style.

The style of a world (``STYLE_DEFAULTS``, checked by ``check_world_style``):
``textures`` and ``grain`` of the background; ``backgrounds``, the background colours
drawn from; ``layout``, "jitter" (a shape's centre moves around its anchor), "anchor"
(exactly on it, or its closest fit: on an 8 px code grid at 32 px a shape is always the
same four codes, each a quarter of it) or "grid" (each shape in its own cell of a 3 x 3
grid, ``GRID_POSITIONS``: one code of a VQGAN whose codes are the cells); ``holdout``,
the fraction of (colour, kind, size, position) combinations that only the test split
draws (``is_held_out``), so test captions and images are combinations never trained on;
``p_two``, the fraction of two-shape scenes; ``small_extent`` and ``large_extent``, a
small and a large shape's extent as a fraction of S (S/4 and S/2 by default).
"""

from __future__ import annotations

import zlib

import numpy as np

from liquid_jax.data.shapes.scene import (
    BACKGROUNDS,
    COLORS,
    GRAIN,
    MIN_CONTRAST,
    POSITIONS,
    RELATIONS,
    SHAPES,
    SIZES,
    TEXTURES,
    Scene,
    contrast,
    make_shape,
)
from liquid_jax.errors import ConfigError

LAYOUTS = ("jitter", "anchor", "grid")
STYLE_DEFAULTS = {
    "textures": TEXTURES,
    "grain": GRAIN,
    "backgrounds": tuple(BACKGROUNDS),
    "layout": "jitter",
    "holdout": 0.0,
    "p_two": 0.5,
    "small_extent": SIZES["small"],
    "large_extent": SIZES["large"],
}


def check_world_style(**style) -> dict:
    """A world's style knobs (``STYLE_DEFAULTS`` keys) validated and filled in, as JSON
    types (name lists as lists)."""
    unknown = sorted(set(style) - set(STYLE_DEFAULTS))
    if unknown:
        raise ConfigError(f"shapes world: unknown style keys {unknown}; known: "
                         f"{sorted(STYLE_DEFAULTS)}")  # fmt: skip
    s = {**STYLE_DEFAULTS, **{k: v for k, v in style.items() if v is not None}}
    backgrounds = s["backgrounds"]
    if isinstance(backgrounds, str):
        backgrounds = [b.strip() for b in backgrounds.split(",") if b.strip()]
    backgrounds = [str(b) for b in backgrounds]
    if not backgrounds or set(backgrounds) - set(BACKGROUNDS):
        raise ConfigError(f"shapes world: backgrounds {backgrounds} must be a non-empty subset "
                         f"of {list(BACKGROUNDS)}")  # fmt: skip
    if s["layout"] not in LAYOUTS:
        raise ConfigError(f"shapes world: layout {s['layout']!r} must be one of {LAYOUTS}")
    if not 0.0 <= float(s["holdout"]) < 1.0:
        raise ConfigError(f"shapes world: holdout={s['holdout']} must be in [0, 1)")
    if not 0.0 <= float(s["p_two"]) <= 1.0:
        raise ConfigError(f"shapes world: p_two={s['p_two']} must be in [0, 1]")
    small, large = float(s["small_extent"]), float(s["large_extent"])
    if not 0.1 <= small < large <= 0.75:
        raise ConfigError(f"shapes world: small_extent={small} and large_extent={large} must "
                         "satisfy 0.1 <= small < large <= 0.75")  # fmt: skip
    return {
        "textures": list(check_style(s["textures"], float(s["grain"]))),
        "grain": float(s["grain"]),
        "backgrounds": backgrounds,
        "layout": str(s["layout"]),
        "holdout": float(s["holdout"]),
        "p_two": float(s["p_two"]),
        "small_extent": small,
        "large_extent": large,
    }


def is_held_out(color: str, kind: str, size: str, position: str, fraction: float) -> bool:
    """Whether the test split alone draws this combination (a fixed hash of the names,
    so the held-out set does not depend on a seed or on the order of draws)."""
    if fraction <= 0.0:
        return False
    key = f"{color}/{kind}/{size}/{position}".encode()
    return zlib.crc32(key) % 10_000 < fraction * 10_000


def check_style(textures, grain: float) -> tuple[str, ...]:
    """The background style knobs, validated: ``textures`` (names, or one comma-separated
    string) as a tuple of known names."""
    if isinstance(textures, str):
        textures = [t.strip() for t in textures.split(",") if t.strip()]
    textures = tuple(str(t) for t in textures)
    unknown = sorted(set(textures) - set(TEXTURES))
    if not textures or unknown:
        raise ConfigError(f"shapes world: textures {list(textures)} must be a non-empty subset of "
                         f"{list(TEXTURES)}")  # fmt: skip
    if not 0.0 <= grain <= 32.0:
        raise ConfigError(f"shapes world: grain={grain} must be in [0, 32] levels")
    return textures


def sample_scene(
    rng: np.random.Generator,
    image_size: int = 32,
    p_two: float = 0.5,
    *,
    textures=TEXTURES,
    grain: float = GRAIN,
    backgrounds=None,
    layout: str = "jitter",
    holdout: float = 0.0,
    small_extent: float = SIZES["small"],
    large_extent: float = SIZES["large"],
    split: str = "train",
) -> Scene:
    """Draws a random scene. ``rng`` is the only source of randomness.

    Two-shape scenes use two different colours, so every shape is identifiable by colour.
    ``p_two``, ``textures``, ``grain``, ``backgrounds``, ``layout``, ``holdout``,
    ``small_extent`` and ``large_extent`` set the world's style (module docstring); the
    defaults draw the full world. With ``holdout`` > 0 the "test" split draws only scenes
    with a held-out combination and the other splits only scenes without one (draws are
    repeated until one fits).
    """
    if image_size < 16:
        raise ConfigError(f"image_size={image_size}: the shapes world needs at least 16 px")
    style = check_world_style(textures=textures, grain=grain, backgrounds=backgrounds,
                              layout=layout, holdout=holdout, p_two=p_two,
                              small_extent=small_extent, large_extent=large_extent)  # fmt: skip
    while True:
        scene = _draw_scene(rng, image_size, style)
        held = [is_held_out(s.color, s.kind, s.size, s.position, style["holdout"])
                for s in scene.shapes]  # fmt: skip
        if style["holdout"] <= 0.0 or any(held) == (split == "test"):
            return scene


def _draw_scene(rng, image_size: int, style: dict) -> Scene:
    textures = tuple(style["textures"])
    layout = style["layout"]
    # The full world draws from every background name, so a subset changes nothing else.
    background = str(rng.choice(list(BACKGROUNDS)))
    if background not in style["backgrounds"]:
        background = style["backgrounds"][list(BACKGROUNDS).index(background)
                                          % len(style["backgrounds"])]  # fmt: skip
    colors = [c for c in COLORS if contrast(c, background) >= MIN_CONTRAST]
    # The draws do not depend on the style, so every style sees the same scenes; a subset
    # picks its texture from the texture seed.
    drawn = TEXTURES[int(rng.integers(len(TEXTURES)))]
    texture_seed = int(rng.integers(2**31))
    texture = drawn if textures == TEXTURES else textures[texture_seed % len(textures)]
    if rng.random() < style["p_two"]:
        relation = str(rng.choice(list(RELATIONS)))
        chosen = rng.choice(len(colors), size=2, replace=False)
        shapes = tuple(
            make_shape(
                rng,
                str(rng.choice(SHAPES)),
                colors[c],
                str(rng.choice(list(SIZES))),
                pos,
                image_size,
                paired=True,
                layout=layout,
                small_extent=style["small_extent"],
                large_extent=style["large_extent"],
            )
            for c, pos in zip(chosen, RELATIONS[relation], strict=True)
        )
    else:
        relation = None
        shapes = (
            make_shape(
                rng,
                str(rng.choice(SHAPES)),
                str(rng.choice(colors)),
                str(rng.choice(list(SIZES))),
                str(rng.choice(list(POSITIONS))),
                image_size,
                layout=layout,
                small_extent=style["small_extent"],
                large_extent=style["large_extent"],
            ),
        )
    return Scene(image_size, background, texture, texture_seed, shapes, relation,
                 float(style["grain"]))  # fmt: skip
