"""The synthetic shapes world: captions agree with pixels, determinism, splits, tfds files."""

import hashlib

import numpy as np
import pytest

from liquid_jax.data.shapes.captions import caption_scene, parse_caption, scene_attributes
from liquid_jax.data.shapes.draw import render_scene
from liquid_jax.data.shapes.examples import image_text_record, text_record
from liquid_jax.data.shapes.sample import sample_scene
from liquid_jax.data.shapes.scene import BACKGROUNDS, COLORS, POSITIONS, Scene
from liquid_jax.data.shapes.world import (
    build_shapes_world,
    generate_images,
    load_shapes_text,
    load_shapes_world,
)


def _records(seed, split, n, size=32):
    return [image_text_record(seed, split, i, size) for i in range(n)]


def _digest(image):
    return hashlib.sha1(image.tobytes()).hexdigest()


@pytest.mark.parametrize("size", [32, 64])
def test_captions_state_the_scene(size):
    for record in _records(0, "train", 300 if size == 32 else 60, size):
        scene = Scene.from_dict(record["attributes"])
        parsed = parse_caption(record["caption"])
        truth = scene_attributes(scene)
        assert parsed is not None, record["caption"]
        assert parsed["shapes"] == truth["shapes"], record["caption"]
        assert parsed["relation"] == truth["relation"], record["caption"]
        assert parsed["background"] in (None, truth["background"]), record["caption"]


@pytest.mark.parametrize("size", [32, 64])
def test_pixels_match_attributes(size):
    """Colour, position (centroid), size (area) and background read from the image alone."""
    areas = {}
    for record in _records(1, "train", 300 if size == 32 else 60, size):
        image, scene = record["image"], Scene.from_dict(record["attributes"])
        assert image.shape == (size, size, 3) and image.dtype == np.uint8
        _, masks = render_scene(scene)
        centroids = []
        for shape, mask in zip(scene.shapes, masks, strict=True):
            # Shapes are flat colour; two-shape scenes use two colours.
            by_color = np.all(image == COLORS[shape.color], axis=-1)
            np.testing.assert_array_equal(by_color, mask)
            ys, xs = np.nonzero(by_color)
            centroid = np.array([xs.mean() + 0.5, ys.mean() + 0.5]) / size
            nearest = min(
                POSITIONS, key=lambda p: np.linalg.norm(np.subtract(POSITIONS[p], centroid))
            )
            assert nearest == shape.position, (record["caption"], centroid)
            x0, y0, x1, y1 = shape.bbox
            assert by_color[y0:y1, x0:x1].sum() == by_color.sum()  # inside its bbox
            areas.setdefault((shape.kind, shape.size), []).append(by_color.sum() / size**2)
            centroids.append(centroid)
        if scene.relation is not None:
            axis, sign = {
                "above": (1, 1),
                "below": (1, -1),
                "left of": (0, 1),
                "right of": (0, -1),
            }[scene.relation]
            assert sign * (centroids[1][axis] - centroids[0][axis]) > 0.25, record["caption"]
        background = ~np.any(masks, axis=0)
        median = np.median(image[background].astype(float), axis=0)
        assert np.abs(median - BACKGROUNDS[scene.background]).max() <= 12
    for kind in {k for k, _ in areas}:
        small, large = areas.get((kind, "small"), []), areas.get((kind, "large"), [])
        if small and large:
            assert 2.5 * max(small) < min(large), kind  # extents differ 2x: areas about 4x


def test_same_seed_same_data_different_seed_different_data():
    a, b = _records(5, "train", 20), _records(5, "train", 20)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x["image"], y["image"])
        assert x["caption"] == y["caption"] and x["attributes"] == y["attributes"]
    c = _records(6, "train", 20)
    assert all(not np.array_equal(x["image"], z["image"]) for x, z in zip(a, c, strict=True))
    assert [text_record(5, "train", i) for i in range(5)] == [
        text_record(5, "train", i) for i in range(5)
    ]
    assert text_record(5, "train", 0) != text_record(6, "train", 0)


def test_splits_do_not_overlap():
    digests = {
        split: {_digest(r["image"]) for r in _records(0, split, n)}
        for split, n in (("train", 400), ("validation", 100), ("test", 100))
    }
    assert [len(d) for d in digests.values()] == [400, 100, 100]  # no repeats inside either
    assert not digests["train"] & digests["validation"]
    assert not digests["train"] & digests["test"]
    assert not digests["validation"] & digests["test"]


def test_palette_is_well_separated():
    names = list(COLORS)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert np.linalg.norm(np.subtract(COLORS[a], COLORS[b])) > 100, (a, b)


def test_caption_variety_and_scene_sampling():
    rng = np.random.default_rng(0)
    scenes = [sample_scene(rng) for _ in range(300)]
    assert {len(s.shapes) for s in scenes} == {1, 2}
    assert len({s.background for s in scenes}) == 3 and len({s.texture for s in scenes}) == 4
    captions = {caption_scene(s, rng) for s in scenes}
    assert len(captions) > 250
    docs = [text_record(0, "train", i)["text"] for i in range(200)]
    assert len(set(docs)) > 180 and all(d and d[0].isupper() for d in docs)


def test_tfds_array_record_round_trip(tmp_path):
    out = str(tmp_path / "shapes")
    paths = build_shapes_world(out, 30, 8, 8, image_size=32, seed=9, num_text_train=12)
    assert set(paths) == {"shapes_world", "shapes_world_text"}
    train = load_shapes_world(out, "train")
    assert len(train) == 30 and train.metadata["seed"] == 9
    for i in range(30):
        got, want = train[i], image_text_record(9, "train", i, 32)
        np.testing.assert_array_equal(got["image"], want["image"])
        assert (got["caption"], got["attributes"], got["index"]) == (
            want["caption"],
            want["attributes"],
            i,
        )
    images = generate_images(5, 32, seed=9, split="train", start=2)
    assert images.shape == (5, 32, 32, 3) and images.dtype == np.uint8
    np.testing.assert_array_equal(images[1], train[3]["image"])
    batch = train.__getitems__([3, 1])
    assert [r["index"] for r in batch] == [3, 1]
    test = load_shapes_world(out, "test")
    assert test[7]["caption"] == image_text_record(9, "test", 7, 32)["caption"]
    text = load_shapes_text(out, "train")
    assert len(text) == 12 and text[4] == text_record(9, "train", 4)
    assert len(load_shapes_text(out, "validation")) == 8
    # Same parameters: reused; different ones: refused unless overwrite=True.
    assert build_shapes_world(out, 30, 8, 8, image_size=32, seed=9, num_text_train=12) == paths
    with pytest.raises(ValueError, match="overwrite"):
        build_shapes_world(out, 30, 8, 8, image_size=32, seed=10)
    build_shapes_world(out, 5, 2, 2, image_size=32, seed=10, overwrite=True)
    assert (
        load_shapes_world(out, "train")[0]["caption"]
        == image_text_record(10, "train", 0)["caption"]
    )
    with pytest.raises(IndexError):
        load_shapes_world(out, "train")[5]
    with pytest.raises(FileNotFoundError):
        load_shapes_world(str(tmp_path / "missing"), "train")


def test_background_style_plain_without_grain(tmp_path):
    """textures/grain: a plain, grain-free world has exactly flat backgrounds; the same
    scenes (captions) as the full world, which differs only in its background pixels."""
    out = str(tmp_path / "plain")
    build_shapes_world(out, 12, 2, 2, seed=4, textures=("plain",), grain=0.0)
    train = load_shapes_world(out, "train")
    assert train.metadata["textures"] == ["plain"] and train.metadata["grain"] == 0.0
    for i in range(12):
        record = train[i]
        scene = Scene.from_dict(record["attributes"])
        assert scene.texture == "plain" and scene.grain == 0.0
        _, masks = render_scene(scene)
        background = record["image"][~masks.any(0)]
        np.testing.assert_array_equal(background, np.broadcast_to(BACKGROUNDS[scene.background],
                                                                  background.shape))  # fmt: skip
        full = image_text_record(4, "train", i, 32)
        assert Scene.from_dict(full["attributes"]).shapes == scene.shapes
        assert full["caption"] == record["caption"]
    np.testing.assert_array_equal(
        generate_images(3, seed=4, split="train", textures="plain", grain=0.0),
        np.stack([train[i]["image"] for i in range(3)]),
    )
    # A world with another style is a different world: refused unless overwrite=True.
    with pytest.raises(ValueError, match="overwrite"):
        build_shapes_world(out, 12, 2, 2, seed=4)
    with pytest.raises(ValueError, match="textures"):
        build_shapes_world(out, 12, 2, 2, seed=4, textures=("plaid",), overwrite=True)
