"""The synthetic shapes world: its attributes, a scene and the geometry of its shapes.

A scene is one shape at a position (left/right/top/bottom/center) or two shapes in a
relation ("above", "below", "left of", "right of": ``shapes[0] REL shapes[1]``), each
with a colour, a size (small: extent S/4, large: extent S/2 for image size S) and a
kind, on a dark/gray/light background that is plain or lightly textured. The scene is
the ground truth: ``draw.render_scene`` draws it, ``captions`` describes
it. Geometry is relative to S, so the same scene draws at 32 or 64 px.

A world's style and the sampling of scenes from a seed live in ``sample``.

Every shape's area centroid is its ``center`` (triangles are placed by centroid), so a
position can be checked from the drawn pixels alone.
"""

from __future__ import annotations

import dataclasses
import json

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
