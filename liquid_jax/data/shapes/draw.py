"""Draws a shapes-world ``Scene`` with numpy: pure function of the scene.

Pixels are tested at their centers against each shape's outline (no anti-aliasing), so
shapes are flat colour and their masks are exact; only the background carries texture
(seeded by ``scene.texture_seed``), at most about +-12 levels, far below the contrast
between shape and background colours.
"""

from __future__ import annotations

import numpy as np

from liquid_jax.data.shapes.scene import BACKGROUNDS, COLORS, Scene, ShapeSpec, shape_outline


def _inside_polygon(px: np.ndarray, py: np.ndarray, outline: np.ndarray) -> np.ndarray:
    """Even-odd rule: bool mask of points (px, py) inside the closed polygon."""
    inside = np.zeros(px.shape, bool)
    x0, y0 = outline[:, 0], outline[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    for ax, ay, bx, by in zip(x0, y0, x1, y1, strict=True):
        crosses = (ay > py) != (by > py)
        with np.errstate(divide="ignore", invalid="ignore"):
            x_at = ax + (py - ay) * (bx - ax) / (by - ay)
        inside ^= crosses & (px < x_at)
    return inside


def shape_mask(shape: ShapeSpec, image_size: int) -> np.ndarray:
    """bool[S, S]: the pixels whose centers lie inside ``shape``."""
    coords = np.arange(image_size) + 0.5
    px = coords[None, :] - shape.center[0]
    py = coords[:, None] - shape.center[1]
    px, py = np.broadcast_arrays(px, py)
    outline = shape_outline(shape.kind, shape.extent)
    if outline is None:
        return px**2 + py**2 <= (shape.extent / 2) ** 2
    return _inside_polygon(px, py, outline)


def _background(scene: Scene) -> np.ndarray:
    """float32[S, S, 3] background with its light texture."""
    s = scene.image_size
    rng = np.random.default_rng(scene.texture_seed)
    base = np.asarray(BACKGROUNDS[scene.background], np.float32)
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float32) / s
    if scene.texture == "gradient":
        angle = rng.uniform(0, 2 * np.pi)
        ramp = (xx - 0.5) * np.cos(angle) + (yy - 0.5) * np.sin(angle)
        delta = 20.0 * ramp[..., None]
    elif scene.texture == "stripes":
        angle, freq = rng.uniform(0, np.pi), rng.uniform(3, 7)
        phase = (xx * np.cos(angle) + yy * np.sin(angle)) * freq * 2 * np.pi
        delta = 8.0 * np.sin(phase)[..., None]
    elif scene.texture == "speckle":
        delta = rng.uniform(-10, 10, (s, s, 1))
    elif scene.texture == "plain":
        delta = np.zeros((s, s, 1), np.float32)
    else:
        raise ValueError(f"unknown texture {scene.texture!r}")
    # A faint per-pixel grain (scene.grain, 0 for none) keeps any two images distinct.
    delta = delta + rng.uniform(-scene.grain, scene.grain, (s, s, 1))
    return base + delta


def render_scene(scene: Scene) -> tuple[np.ndarray, np.ndarray]:
    """Returns ``(image uint8[S, S, 3], masks bool[num_shapes, S, S])``.

    Later shapes are drawn over earlier ones (they never overlap in sampled scenes); a
    mask holds the pixels that show its shape.
    """
    s = scene.image_size
    image = _background(scene)
    masks = np.stack([shape_mask(shape, s) for shape in scene.shapes])
    for i, shape in enumerate(scene.shapes):
        image[masks[i]] = COLORS[shape.color]
        masks[:i] &= ~masks[i]
    return np.clip(np.rint(image), 0, 255).astype(np.uint8), masks
