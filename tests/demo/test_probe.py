"""The attribute probe reads real shapes-world images correctly once trained on the train
split's ground truth, and its per-slot labels describe every scene."""

import numpy as np

from liquid_jax.data.shapes.captions import scene_attributes
from liquid_jax.data.shapes.examples import image_text_record
from liquid_jax.data.shapes.scene import Scene
from liquid_jax.evals.probe import (
    SLOTS,
    AttributeProbe,
    blurred_u8,
    gaussian_blur,
    slot_labels,
    train_probe,
)
from liquid_jax.evals.scoring import score_images


def _data(split, n, **style):
    records = [image_text_record(0, split, i, 32, **style) for i in range(n)]
    return np.stack([r["image"] for r in records]), records


def test_slot_labels_place_each_shape_at_its_position():
    _, records = _data("train", 20)
    labels = slot_labels([r["attributes"] for r in records])
    for i, r in enumerate(records):
        occupied = {SLOTS[s] for s in np.flatnonzero(labels["occupied"][i])}
        assert occupied == {s["position"] for s in r["attributes"]["shapes"]}
    # The canonical (parse_caption) form gives the same labels.
    canonical = [scene_attributes(Scene.from_dict(r["attributes"])) for r in records]
    for k, v in slot_labels(canonical).items():
        np.testing.assert_array_equal(v, labels[k], err_msg=k)


def test_probe_reads_real_test_images(tmp_path):
    """400 steps reach about 0.975 overall (0.99 on colour and position); 700 added 0.01."""
    images, records = _data("train", 3000)
    probe = train_probe(images, [r["attributes"] for r in records], steps=400, batch_size=64)
    test_images, test_records = _data("test", 200)
    truth = [scene_attributes(Scene.from_dict(r["attributes"])) for r in test_records]
    scores = score_images(probe.predict(test_images), truth)
    assert scores["all"] >= 0.95, scores
    assert min(scores["color"], scores["position"]) >= 0.97, scores
    loaded = AttributeProbe.load(probe.save(str(tmp_path / "probe.npz")))
    for k, v in loaded.predict(test_images[:16]).items():
        np.testing.assert_array_equal(v, probe.predict(test_images[:16])[k])


# The demo's world (configs/demo.py): every shape exactly on its anchor, flat gray.
DEMO_STYLE = dict(textures=("plain",), grain=0.0, backgrounds=("gray",), layout="anchor",
                  holdout=0.15, p_two=0.25, small_extent=0.375)  # fmt: skip


def test_probe_reads_blurred_demo_shapes():
    """A real test image blurred by 1 px keeps its attributes. Mutation caught: ``soften``
    returning its input (a probe trained on the demo's exact, repeated shapes alone matches
    pixels: it called 5% of blurred test shapes the wrong size)."""
    images, records = _data("train", 2000, **DEMO_STYLE)
    probe = train_probe(images, [r["attributes"] for r in records], steps=300, batch_size=64)
    test_images, test_records = _data("test", 200, **DEMO_STYLE)
    truth = [scene_attributes(Scene.from_dict(r["attributes"])) for r in test_records]
    assert score_images(probe.predict(test_images), truth)["all"] == 1.0
    blurred = score_images(probe.predict(blurred_u8(test_images)), truth)
    assert blurred["all"] >= 0.99, blurred


def test_gaussian_blur_matches_scipy():
    """Per-image sigma, edges repeated: scipy's filter with the same 5 taps (radius 2)."""
    from scipy.ndimage import gaussian_filter

    x = np.random.default_rng(0).normal(size=(3, 9, 7, 2)).astype(np.float32)
    sigmas = np.array([0.4, 1.0, 1.7], np.float32)
    got = np.asarray(gaussian_blur(x, sigmas))
    for i, s in enumerate(sigmas):
        want = gaussian_filter(x[i], sigma=(s, s, 0), mode="nearest", truncate=2.0 / s)
        np.testing.assert_allclose(got[i], want, atol=1e-5)
    np.testing.assert_allclose(np.asarray(gaussian_blur(x, np.zeros(3, np.float32))), x)
