"""The synthetic shapes world: its attributes, and sampling a scene from a seed.

A scene is one shape at a position (left/right/top/bottom/center) or two shapes in a
relation ("above", "below", "left of", "right of": ``shapes[0] REL shapes[1]``), each
with a colour, a size (small: extent S/4, large: extent S/2 for image size S) and a
kind, on a dark/gray/light background that is plain or lightly textured. The scene is
the ground truth: ``shapes_draw.render_scene`` draws it, ``shapes_captions`` describes
it. Geometry is relative to S, so the same scene draws at 32 or 64 px.

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

Every shape's area centroid is its ``center`` (triangles are placed by centroid), so a
position can be checked from the drawn pixels alone.
"""

from __future__ import annotations

import dataclasses
import json
import zlib

import numpy as np

# Well separated in RGB (pairwise distance > 100), flat on the shape.
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 170, 50),
    "blue": (30, 70, 230),
    "yellow": (240, 220, 30),
    "purple": (140, 50, 200),
    "orange": (255, 120, 0),
    "white": (245, 245, 245),
    "cyan": (20, 200, 210),
}
BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "dark": (30, 30, 30),
    "gray": (120, 120, 120),
    "light": (210, 210, 200),
}
# A shape colour must differ from the background by this much (white on light does not).
MIN_CONTRAST = 100.0
SHAPES = ("circle", "square", "triangle", "star", "diamond", "cross")
SIZES = {"small": 0.25, "large": 0.5}  # extent as a fraction of the image size
POSITIONS = {  # anchor (x, y) as fractions of the image size
    "left": (0.25, 0.5),
    "right": (0.75, 0.5),
    "top": (0.5, 0.25),
    "bottom": (0.5, 0.75),
    "center": (0.5, 0.5),
}
# The "grid" layout: the image is a 3 x 3 grid of cells, a position is the centre of a
# cell and a shape fills its cell (large) or its middle (small), so a shape never
# crosses a cell border and a VQGAN whose codes are cells (downsample S/3, e.g. 16 at
# 48 px) codes each shape as one code.
GRID_POSITIONS = {
    "left": (1 / 6, 0.5),
    "right": (5 / 6, 0.5),
    "top": (0.5, 1 / 6),
    "bottom": (0.5, 5 / 6),
    "center": (0.5, 0.5),
}
GRID_SIZES = {"small": 1 / 6, "large": 1 / 3}
# Relation -> (position of shapes[0], position of shapes[1]).
RELATIONS = {
    "above": ("top", "bottom"),
    "below": ("bottom", "top"),
    "left of": ("left", "right"),
    "right of": ("right", "left"),
}
TEXTURES = ("plain", "gradient", "stripes", "speckle")
# Amplitude (in levels) of the faint per-pixel grain on every background.
GRAIN = 2.0
# Jitter of a shape's center around its anchor, as a fraction of the image size. Small
# enough that the nearest anchor to the drawn centroid is always the stated position.
_JITTER_ALONG, _JITTER_ACROSS = 0.06, 0.08


@dataclasses.dataclass(frozen=True)
class ShapeSpec:
    """One drawn shape. ``center``/``bbox`` in pixels; bbox = (x0, y0, x1, y1), exclusive."""

    kind: str
    color: str
    size: str
    position: str
    center: tuple[float, float]
    extent: float
    bbox: tuple[int, int, int, int]


@dataclasses.dataclass(frozen=True)
class Scene:
    """Ground-truth attributes of one image (JSON-serialisable via ``to_dict``)."""

    image_size: int
    background: str
    texture: str
    texture_seed: int
    shapes: tuple[ShapeSpec, ...]
    relation: str | None = None  # shapes[0] RELATION shapes[1]; None for one shape
    grain: float = GRAIN  # per-pixel background grain amplitude, in levels

    def to_dict(self) -> dict:
        """Plain JSON types (tuples become lists), so it equals its JSON round trip."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, data: dict) -> Scene:
        shapes = tuple(
            ShapeSpec(**{**s, "center": tuple(s["center"]), "bbox": tuple(s["bbox"])})
            for s in data["shapes"]
        )
        return cls(**{**data, "shapes": shapes})


def contrast(color: str, background: str) -> float:
    return float(np.linalg.norm(np.subtract(COLORS[color], BACKGROUNDS[background])))


def shape_outline(kind: str, extent: float) -> np.ndarray | None:
    """Polygon vertices (float[N, 2], x/y relative to the centroid) or None for a circle.

    ``extent`` is the nominal width; the bbox of the outline is about extent x extent.
    """
    r = extent / 2
    if kind == "circle":
        return None
    if kind == "square":
        return np.array([[-r, -r], [r, -r], [r, r], [-r, r]])
    if kind == "diamond":
        return np.array([[0, -r], [r, 0], [0, r], [-r, 0]])
    if kind == "triangle":  # centroid at the origin: apex 2/3 of the height above it
        return np.array([[0, -4 * r / 3], [r, 2 * r / 3], [-r, 2 * r / 3]])
    if kind == "cross":
        a = r / 3
        return np.array(
            [
                [-a, -r],
                [a, -r],
                [a, -a],
                [r, -a],
                [r, a],
                [a, a],
                [a, r],
                [-a, r],
                [-a, a],
                [-r, a],
                [-r, -a],
                [-a, -a],
            ]
        )
    if kind == "star":  # five points, inner radius 0.45 of the outer
        angles = -np.pi / 2 + np.arange(10) * np.pi / 5
        radii = np.where(np.arange(10) % 2 == 0, r * 1.05, r * 0.45)
        return np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)
    raise ValueError(f"unknown shape kind {kind!r}; known: {SHAPES}")


def _offsets(kind: str, extent: float) -> tuple[float, float, float, float]:
    """(left, top, right, bottom) reach of the shape from its centroid, in pixels."""
    outline = shape_outline(kind, extent)
    if outline is None:
        r = extent / 2
        return r, r, r, r
    return -outline[:, 0].min(), -outline[:, 1].min(), outline[:, 0].max(), outline[:, 1].max()


def _place(rng, kind, extent, position, region, size_px, jitter=True) -> tuple[float, float]:
    """Samples a centroid near ``position``'s anchor with the shape inside ``region``
    (``jitter`` False: the anchor itself, or its closest fit; drawn the same way)."""
    left, top, right, bottom = _offsets(kind, extent)
    ax, ay = POSITIONS[position]
    along_x = position in ("left", "right")
    jx = _JITTER_ALONG if along_x else _JITTER_ACROSS
    jy = _JITTER_ACROSS if along_x else _JITTER_ALONG
    if position == "center":
        jx = jy = _JITTER_ALONG
    if not jitter:
        jx = jy = 0.0
    center = []
    for anchor, jitter, lo_reach, hi_reach, (lo, hi) in (
        (ax, jx, left, right, region[0]),
        (ay, jy, top, bottom, region[1]),
    ):
        lo_c = max((anchor - jitter) * size_px, lo * size_px + lo_reach)
        hi_c = min((anchor + jitter) * size_px, hi * size_px - hi_reach)
        if lo_c > hi_c:  # no room to move: the closest fit to the anchor
            lo_c = hi_c = float(
                np.clip(anchor * size_px, lo * size_px + lo_reach, hi * size_px - hi_reach)
            )
        center.append(float(rng.uniform(lo_c, hi_c)))
    return center[0], center[1]


def _region(position: str, paired: bool):
    """Where a shape may lie: the whole frame, or its half of it when there are two."""
    if not paired:
        return (0.0, 1.0), (0.0, 1.0)
    return {
        "left": ((0.0, 0.5), (0.0, 1.0)),
        "right": ((0.5, 1.0), (0.0, 1.0)),
        "top": ((0.0, 1.0), (0.0, 0.5)),
        "bottom": ((0.0, 1.0), (0.5, 1.0)),
    }[position]


def make_shape(
    rng,
    kind,
    color,
    size,
    position,
    image_size,
    paired=False,
    layout="jitter",
    small_extent=SIZES["small"],
    large_extent=SIZES["large"],
) -> ShapeSpec:
    """Places one shape near ``position`` (inside its half of the frame when ``paired``),
    exactly on it (``layout`` "anchor"), or in its cell of the 3 x 3 grid ("grid":
    ``GRID_POSITIONS``, ``GRID_SIZES``), its bounding box centred there. ``rng`` is
    drawn from the same way for every layout, so all of them see the same scenes.
    ``small_extent`` / ``large_extent``: a shape's extent as a fraction of the image, by
    size (not for "grid")."""
    if layout == "grid":
        extent = GRID_SIZES[size] * image_size
        left, top, right, bottom = _offsets(kind, extent)
        rng.uniform(size=2)  # the draws of _place
        ax, ay = (a * image_size for a in GRID_POSITIONS[position])
        cx, cy = ax - (right - left) / 2, ay - (bottom - top) / 2
    else:
        extent = (small_extent if size == "small" else large_extent) * image_size
        region = _region(position, paired)
        cx, cy = _place(rng, kind, extent, position, region, image_size, layout == "jitter")
        left, top, right, bottom = _offsets(kind, extent)
    bbox = (
        max(0, int(np.floor(cx - left))),
        max(0, int(np.floor(cy - top))),
        min(image_size, int(np.ceil(cx + right))),
        min(image_size, int(np.ceil(cy + bottom))),
    )
    return ShapeSpec(kind, color, size, position, (cx, cy), extent, bbox)


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
        raise ValueError(f"shapes world: unknown style keys {unknown}; known: "
                         f"{sorted(STYLE_DEFAULTS)}")  # fmt: skip
    s = {**STYLE_DEFAULTS, **{k: v for k, v in style.items() if v is not None}}
    backgrounds = s["backgrounds"]
    if isinstance(backgrounds, str):
        backgrounds = [b.strip() for b in backgrounds.split(",") if b.strip()]
    backgrounds = [str(b) for b in backgrounds]
    if not backgrounds or set(backgrounds) - set(BACKGROUNDS):
        raise ValueError(f"shapes world: backgrounds {backgrounds} must be a non-empty subset "
                         f"of {list(BACKGROUNDS)}")  # fmt: skip
    if s["layout"] not in LAYOUTS:
        raise ValueError(f"shapes world: layout {s['layout']!r} must be one of {LAYOUTS}")
    if not 0.0 <= float(s["holdout"]) < 1.0:
        raise ValueError(f"shapes world: holdout={s['holdout']} must be in [0, 1)")
    if not 0.0 <= float(s["p_two"]) <= 1.0:
        raise ValueError(f"shapes world: p_two={s['p_two']} must be in [0, 1]")
    small, large = float(s["small_extent"]), float(s["large_extent"])
    if not 0.1 <= small < large <= 0.75:
        raise ValueError(f"shapes world: small_extent={small} and large_extent={large} must "
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
        raise ValueError(f"shapes world: textures {list(textures)} must be a non-empty subset of "
                         f"{list(TEXTURES)}")  # fmt: skip
    if not 0.0 <= grain <= 32.0:
        raise ValueError(f"shapes world: grain={grain} must be in [0, 32] levels")
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
        raise ValueError(f"image_size={image_size}: the shapes world needs at least 16 px")
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
