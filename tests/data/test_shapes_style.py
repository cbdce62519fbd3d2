"""The shapes world's style knobs: layouts drawn on a code grid, held-out combinations."""

import numpy as np
import pytest

from liquid_jax.data.shapes.examples import image_text_record
from liquid_jax.data.shapes.sample import check_world_style, is_held_out
from liquid_jax.data.shapes.scene import GRID_POSITIONS, Scene

PLAIN = {"textures": ("plain",), "grain": 0.0, "backgrounds": ("gray",)}


def _scenes(split, n, size=32, **style):
    records = [image_text_record(0, split, i, size, **{**PLAIN, **style}) for i in range(n)]
    return records, [Scene.from_dict(r["attributes"]) for r in records]


def _patches(images, cell):
    n, s = len(images), images.shape[1] // cell
    x = images.reshape(n, s, cell, s, cell, 3).transpose(0, 1, 3, 2, 4, 5)
    return [p.tobytes() for p in x.reshape(-1, cell, cell, 3)]


def test_holdout_splits_combinations_between_test_and_the_rest():
    """Mutation caught: ``any(held) == (split == "test")`` inverted, or the split ignored."""
    fraction = 0.3
    for split, want in (("train", False), ("validation", False), ("test", True)):
        _, scenes = _scenes(split, 80, holdout=fraction)
        for scene in scenes:
            held = [is_held_out(s.color, s.kind, s.size, s.position, fraction)
                    for s in scene.shapes]  # fmt: skip
            assert any(held) == want, (split, scene.shapes)
    train, _ = _scenes("train", 300, holdout=fraction)
    test, _ = _scenes("test", 60, holdout=fraction)
    assert not {r["caption"] for r in test} & {r["caption"] for r in train}


def test_holdout_zero_draws_the_unchanged_world():
    a, _ = _scenes("test", 20)
    b, _ = _scenes("test", 20, holdout=0.0, layout="jitter")
    assert [r["caption"] for r in a] == [r["caption"] for r in b]
    assert all(np.array_equal(x["image"], y["image"]) for x, y in zip(a, b))


def test_anchor_layout_repeats_the_same_code_patches():
    """A shape of one colour, kind and size is the same pixels wherever it stands, so the
    8 px patches of a world are few; with jitter they keep growing. Mutation caught: the
    anchor layout still jittering."""
    anchored = np.stack([r["image"] for r in _scenes("train", 300, layout="anchor")[0]])
    jittered = np.stack([r["image"] for r in _scenes("train", 300, layout="jitter")[0]])
    n_anchor, n_jitter = len(set(_patches(anchored, 8))), len(set(_patches(jittered, 8)))
    assert n_anchor < 0.5 * n_jitter, (n_anchor, n_jitter)
    _, scenes = _scenes("train", 200, layout="anchor")
    centres = {}
    for scene in scenes:
        for shape in scene.shapes:
            key = (shape.kind, shape.size, shape.position, scene.relation is None)
            centres.setdefault(key, set()).add(shape.center)
    assert all(len(c) == 1 for c in centres.values()), centres


def test_grid_layout_keeps_each_shape_inside_its_cell():
    """Mutation caught: the grid layout using the jittered anchors."""
    size, cell = 48, 16
    records, scenes = _scenes("train", 120, size=size, layout="grid")
    background = np.array([120, 120, 120], np.uint8)
    for record, scene in zip(records, scenes):
        owned = np.zeros((3, 3), bool)
        for shape in scene.shapes:
            fx, fy = GRID_POSITIONS[shape.position]
            owned[int(fy * 3), int(fx * 3)] = True
        image = record["image"]
        for r in range(3):
            for c in range(3):
                block = image[r * cell : (r + 1) * cell, c * cell : (c + 1) * cell]
                drawn = np.any(block != background)
                assert drawn == owned[r, c], (scene.shapes, r, c)
    patches = _patches(np.stack([r["image"] for r in records]), cell)
    assert len(set(patches)) <= 1 + 8 * 6 * 2


@pytest.mark.parametrize(
    "style, small, large",
    [({"small_extent": 0.375}, 12.0, 16.0), ({"large_extent": 0.5625}, 8.0, 18.0)],
)
def test_extent_knobs_set_the_size_of_their_shapes_only(style, small, large):
    """The same scenes (same draws), with one size drawn wider at 32 px and the other
    unchanged. Mutation caught: an extent applied to every size."""
    _, default = _scenes("train", 60, layout="anchor")
    _, wider = _scenes("train", 60, layout="anchor", **style)
    widths = {"small": set(), "large": set()}
    for a, b in zip(default, wider, strict=True):
        for x, y in zip(a.shapes, b.shapes, strict=True):
            assert (x.kind, x.color, x.size, x.position) == (y.kind, y.color, y.size, y.position)
            widths[x.size].add((x.extent, y.extent))
    assert widths["small"] == {(8.0, small)} and widths["large"] == {(16.0, large)}


@pytest.mark.parametrize(
    "style, message",
    [
        ({"layout": "wobbly"}, "layout"),
        ({"backgrounds": ("pink",)}, "backgrounds"),
        ({"holdout": 1.0}, "holdout"),
        ({"p_two": 2.0}, "p_two"),
        ({"small_extent": 0.5}, "small_extent"),
        ({"large_extent": 0.8}, "large_extent"),
        ({"colour": "red"}, "unknown style keys"),
    ],
)
def test_bad_style_names_the_key(style, message):
    with pytest.raises(ValueError, match=message):
        check_world_style(**style)
