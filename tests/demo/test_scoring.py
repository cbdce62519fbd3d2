"""Caption and image scoring against ground-truth scenes (``evals.scoring``)."""

import numpy as np

from liquid_jax.data.shapes.captions import parse_caption, scene_attributes
from liquid_jax.data.shapes.examples import image_text_record
from liquid_jax.data.shapes.scene import Scene
from liquid_jax.evals.probe import slot_labels
from liquid_jax.evals.scoring import score_captions, score_images


def _records(n=40):
    return [image_text_record(0, "test", i) for i in range(n)]


def _truth(records):
    return [scene_attributes(Scene.from_dict(r["attributes"])) for r in records]


def test_true_captions_score_one():
    records = _records()
    scores = score_captions([r["caption"] for r in records], _truth(records))
    assert scores["parsed"] == 1.0
    for key in ("color", "shape", "size", "position", "all"):
        assert scores[key] == 1.0, key


def test_wrong_attributes_and_garbage_lower_the_right_scores():
    truth = [parse_caption("a small red circle on the left")]
    wrong_color = score_captions(["a small blue circle on the left"], truth)
    assert wrong_color["color"] == 0.0 and wrong_color["shape"] == 1.0
    assert wrong_color["size"] == 1.0 and wrong_color["position"] == 1.0
    wrong_place = score_captions(["a small red circle on the right"], truth)
    assert wrong_place["position"] == 0.0 and wrong_place["color"] == 0.0
    garbage = score_captions(["red red red"], truth)
    assert garbage["parsed"] == 0.0 and garbage["all"] == 0.0
    # A pair stated in the other direction is the same scene.
    pair = [parse_caption("a large green star above a small cyan cross")]
    flipped = score_captions(["a small cyan cross below a large green star"], pair)
    assert flipped["all"] == 1.0


def test_image_scores_from_perfect_and_broken_predictions():
    records = _records()
    truth = _truth(records)
    perfect = slot_labels([r["attributes"] for r in records])
    assert score_images(perfect, truth)["all"] == 1.0
    broken = {k: v.copy() for k, v in perfect.items()}
    broken["color"] = (broken["color"] + 1) % 8
    scores = score_images(broken, truth)
    assert scores["color"] == 0.0 and scores["shape"] == 1.0 and scores["position"] == 1.0
    empty = {k: np.zeros_like(v) for k, v in perfect.items()}
    assert score_images(empty, truth)["all"] == 0.0
