"""Captions for shapes-world scenes (several phrasings), and parsing them back.

``parse_caption`` inverts ``caption_scene`` for every template, so generated captions
can be scored against ground truth (attribute accuracy of I2T outputs) and tests can
check that each caption states exactly the scene's attributes.
"""

from __future__ import annotations

import re

import numpy as np

from liquid_jax.data.shapes.scene import BACKGROUNDS, COLORS, SHAPES, SIZES, Scene

POSITION_PHRASES = {
    "left": "on the left",
    "right": "on the right",
    "top": "at the top",
    "bottom": "at the bottom",
    "center": "in the center",
}
RELATION_PHRASES = {
    "above": "above",
    "below": "below",
    "left of": "to the left of",
    "right of": "to the right of",
}
INVERSE_RELATION = {
    "above": "below",
    "below": "above",
    "left of": "right of",
    "right of": "left of",
}

# {a}: "small red circle"; {p}: position phrase; {bg}: background name.
SINGLE_TEMPLATES = (
    "a {a} {p}",
    "there is a {a} {p}",
    "a {a} {p} on a {bg} background",
    "{p}, a {a}",
    "a picture of a {a} {p}",
    "one {a} {p} against a {bg} background",
)
# {a} {r} {b}: the first shape, the relation phrase, the second shape.
PAIR_TEMPLATES = (
    "a {a} {r} a {b}",
    "a {a} is {r} a {b}",
    "a {a} {r} a {b} on a {bg} background",
    "two shapes: a {a} {r} a {b}",
    "there is a {a} {r} a {b}",
)


def _describe(shape) -> str:
    return f"{shape.size} {shape.color} {shape.kind}"


def caption_scene(scene: Scene, rng: np.random.Generator) -> str:
    """A caption for ``scene``; ``rng`` picks the template (and, for pairs, the order)."""
    if scene.relation is None:
        (shape,) = scene.shapes
        template = SINGLE_TEMPLATES[rng.integers(len(SINGLE_TEMPLATES))]
        return template.format(
            a=_describe(shape), p=POSITION_PHRASES[shape.position], bg=scene.background
        )
    first, second = scene.shapes
    relation = scene.relation
    if rng.random() < 0.5:  # "a blue square below a red circle" says the same thing
        first, second, relation = second, first, INVERSE_RELATION[relation]
    template = PAIR_TEMPLATES[rng.integers(len(PAIR_TEMPLATES))]
    return template.format(
        a=_describe(first), r=RELATION_PHRASES[relation], b=_describe(second), bg=scene.background
    )


_SHAPE_RE = re.compile(rf"\b({'|'.join(SIZES)}) ({'|'.join(COLORS)}) ({'|'.join(SHAPES)})\b")
_RELATION_RE = re.compile(
    r"\b(" + "|".join(sorted(RELATION_PHRASES.values(), key=len, reverse=True)) + r")\b"
)
_POSITION_RE = re.compile(r"\b(" + "|".join(POSITION_PHRASES.values()) + r")\b")
_BACKGROUND_RE = re.compile(rf"\b({'|'.join(BACKGROUNDS)}) background\b")


def parse_caption(text: str) -> dict | None:
    """Reads the attributes a caption states, in canonical form.

    Returns ``{"shapes": [(size, color, kind, position), ...], "relation": str | None,
    "background": str | None}`` with pairs normalised to ``shapes[0] REL shapes[1]`` with
    REL in {"above", "left of"} and positions filled in from the relation; None when the
    text is not a well-formed description (no shape, or two shapes without a relation).
    """
    text = text.strip().lower()
    shapes = _SHAPE_RE.findall(text)
    background = _BACKGROUND_RE.search(text)
    background = background.group(1) if background else None
    if len(shapes) == 1:
        position = _POSITION_RE.search(text)
        if position is None:
            return None
        by_phrase = {v: k for k, v in POSITION_PHRASES.items()}
        return {
            "shapes": [(*shapes[0], by_phrase[position.group(1)])],
            "relation": None,
            "background": background,
        }
    if len(shapes) == 2:
        between = text[text.find(" ".join(shapes[0])) :]
        relation = _RELATION_RE.search(between)
        if relation is None:
            return None
        relation = {v: k for k, v in RELATION_PHRASES.items()}[relation.group(1)]
        if relation in ("below", "right of"):
            shapes, relation = shapes[::-1], INVERSE_RELATION[relation]
        positions = _relation_positions(relation)
        return {
            "shapes": [(*s, p) for s, p in zip(shapes, positions, strict=True)],
            "relation": relation,
            "background": background,
        }
    return None


def _relation_positions(relation: str) -> tuple[str, str]:
    return {"above": ("top", "bottom"), "left of": ("left", "right")}[relation]


def scene_attributes(scene: Scene) -> dict:
    """The scene in ``parse_caption``'s canonical form (background always filled in)."""
    shapes = [(s.size, s.color, s.kind, s.position) for s in scene.shapes]
    relation = scene.relation
    if relation in ("below", "right of"):
        shapes, relation = shapes[::-1], INVERSE_RELATION[relation]
    return {"shapes": shapes, "relation": relation, "background": scene.background}
