"""``evals.scoring`` judges each attribute at the stated position, not anywhere in the
scene: two-shape scenes whose shapes trade places (colour, kind and size swapped between
the two slots) score 0 on colour, shape and size and 1 on position.

Mutations tried (on an in-memory copy of ``evals/scoring.py``):
- ``score_images`` position-blind (``got = seen.get(slot)`` -> the predicted shape of the
  stated colour wherever it is): ``test_swapped_slots_in_images_*`` fails;
- ``score_captions`` position-blind the same way (``other = said.get(position)`` -> the
  said shape of that colour): ``test_swapped_shapes_in_captions_*`` fails.
"""

from liquid_jax.data.shapes.captions import parse_caption, scene_attributes
from liquid_jax.data.shapes.examples import image_text_record
from liquid_jax.data.shapes.scene import Scene
from liquid_jax.evals.probe import SLOTS, slot_labels
from liquid_jax.evals.scoring import score_captions, score_images

# "all" pools the hits: per image 2 shapes x 3 attributes wrong, 1 position right.
ZERO_BUT_POSITION = {"color": 0.0, "shape": 0.0, "size": 0.0, "position": 1.0, "all": 1 / 7}


def _all_differ(scene: dict) -> bool:
    (a, b) = scene["shapes"]
    return all(x != y for x, y in zip(a[:3], b[:3]))


def _swapped(scene: dict) -> dict:
    """The same two positions, each holding the other shape's size, colour and kind."""
    (a, b) = scene["shapes"]
    return {**scene, "shapes": [(*b[:3], a[3]), (*a[:3], b[3])]}


def _pair_scenes(n=6):
    """Generated two-shape test scenes whose shapes differ in colour, kind and size."""
    out, i = [], 0
    while len(out) < n:
        record = image_text_record(0, "test", i)
        scene = scene_attributes(Scene.from_dict(record["attributes"]))
        if len(scene["shapes"]) == 2 and _all_differ(scene):
            out.append(scene)
        i += 1
    return out


def _caption(scene: dict) -> str:
    (a, b) = scene["shapes"]
    relation = {"above": "above", "left of": "to the left of"}[scene["relation"]]
    return f"a {' '.join(a[:3])} {relation} a {' '.join(b[:3])}"


def test_swapped_slots_in_images_score_zero_but_position():
    scenes = _pair_scenes()
    assert {s["relation"] for s in scenes} == {"above", "left of"}  # both slot pairs
    perfect = slot_labels(scenes)
    assert score_images(perfect, scenes)["all"] == 1.0
    swapped = slot_labels([_swapped(s) for s in scenes])
    assert score_images(swapped, scenes) == ZERO_BUT_POSITION
    # Moving both shapes to other slots loses the position too.
    moved = {k: v[:, [SLOTS.index(p) for p in ("top", "bottom", "left", "right", "center")]]
             for k, v in perfect.items()}  # fmt: skip
    assert score_images(moved, scenes)["position"] == 0.0


def test_swapped_shapes_in_captions_score_zero_but_position():
    scenes = _pair_scenes()
    captions = [_caption(s) for s in scenes]
    assert [parse_caption(c)["shapes"] for c in captions] == [s["shapes"] for s in scenes]
    assert score_captions(captions, scenes)["all"] == 1.0
    swapped = score_captions([_caption(_swapped(s)) for s in scenes], scenes)
    assert swapped.pop("parsed") == 1.0
    assert swapped == ZERO_BUT_POSITION
    # The hand-written pair: the same two shapes, the other way up.
    truth = [parse_caption("a large green star above a small cyan cross")]
    flipped = score_captions(["a small cyan cross above a large green star"], truth)
    assert flipped.pop("parsed") == 1.0 and flipped == ZERO_BUT_POSITION
