"""The demo's evaluation (``demo.evaluate.run_eval``) with stub samplers and a stub probe:
its numbers must mean what the report says they mean.

- a sampler that draws the true test image for each caption scores, on T2I, exactly what
  the probe scores on the real test images;
- a sampler that writes the true caption of each image scores 1 on I2T;
- a sampler that ignores the caption (T2I) or the image (I2T) scores near chance, far
  below both.

Nothing is trained: the world's records are generated in memory, the probe is a lookup
table of the images it was "trained" on with deliberate mistakes (so its accuracy is
not 1), and the model loaders, perplexity and caption use are replaced by stubs.

Mutations tried (on an in-memory copy of ``demo/evaluate.py``):
- T2I scored against the prompts in reverse order (``targets = [parse_caption(p) for p
  in prompts[::-1]]``): ``test_true_images_score_what_the_probe_scores`` fails;
- I2T scored against the next image's scene (``truth[1 : e.num_images + 1]``):
  ``test_true_captions_score_one`` fails;
- the no-guidance T2I run with guidance (``("nocfg", e.cfg_scale)``):
  ``test_true_images_score_what_the_probe_scores`` fails.
"""

import numpy as np
import pytest

from configs.demo import get_config
from liquid_jax.data.shapes.captions import parse_caption
from liquid_jax.data.shapes.examples import image_text_record
from liquid_jax.demo import evaluate, stages
from liquid_jax.demo.stages import Paths
from liquid_jax.evals.probe import slot_labels
from liquid_jax.evals.scoring import ATTRIBUTES, score_captions

N = 40  # test prompts and images
TEST = [image_text_record(0, "test", i) for i in range(N)]
TRAIN = [image_text_record(0, "train", i) for i in range(N)]


class LookupProbe:
    """Knows the scene of every image it was given; gets the colour of every third and
    the size of every fourth of them wrong; sees nothing in an unknown image."""

    def __init__(self, records):
        self.labels = {}
        for k, r in enumerate(records):
            labels = {h: v[0] for h, v in slot_labels([r["attributes"]]).items()}
            if k % 3 == 0:
                labels["color"] = (labels["color"] + 1) % 8
            if k % 4 == 0:
                labels["size"] = 1 - labels["size"]
            self.labels[r["image"].tobytes()] = labels

    def predict(self, images):
        empty = {h: np.zeros(5, np.int32) for h in ("occupied", "color", "kind", "size")}
        rows = [self.labels.get(np.asarray(x).tobytes(), empty) for x in images]
        return {h: np.stack([r[h] for r in rows]) for h in empty}

    def save(self, path):
        return path


class Result:
    def __init__(self, images):
        self.images = images


class StubSampler:
    """T2I draws ``t2i_image(prompt_index, prompt)``; I2T writes ``caption(image_index,
    image)``. Records the guidance scale of each T2I call."""

    vqgan = None

    def __init__(self, t2i_image, caption):
        self.t2i_image, self.caption, self.scales = t2i_image, caption, []

    def t2i(self, prompts, *, cfg_scale, **_):
        self.scales.append(cfg_scale)
        return Result(np.stack([self.t2i_image(i, p) for i, p in enumerate(prompts)]))

    def i2t(self, images, **_):
        return [self.caption(i, x) for i, x in enumerate(images)]


def _run(monkeypatch, tmp_path, sampler):
    """``run_eval`` on the in-memory world with ``sampler``; returns its metrics."""

    class Split:
        def __init__(self, records):
            self.records = records

        def __len__(self):
            return len(self.records)

        def __getitem__(self, i):
            return self.records[i]

        def __getitems__(self, ids):
            return [self.records[i] for i in ids]

    probe = LookupProbe(TEST + TRAIN)
    worlds = {"train": Split(TRAIN), "test": Split(TEST)}
    monkeypatch.setattr(stages, "load_shapes_world", lambda _, split: worlds[split])
    monkeypatch.setattr(evaluate, "load_shapes_world", lambda _, split: worlds[split])
    monkeypatch.setattr(evaluate, "load_shapes_text", lambda *_: Split([{"text": "a"}]))
    monkeypatch.setattr(evaluate, "train_probe", lambda *a, **k: probe)
    monkeypatch.setattr(evaluate, "load_for_sampling", lambda *a, **k: sampler)
    monkeypatch.setattr(evaluate, "_reconstruct", lambda vqgan, images: images)
    monkeypatch.setattr(evaluate, "blurred_u8", lambda images: images)
    monkeypatch.setattr(evaluate, "load_trained_model", lambda *_: (None, None, None, 0))
    monkeypatch.setattr(evaluate, "perplexity", lambda *a, **k: {"ppl": 1.0, "tokens": 1})
    use = dict.fromkeys(("true", "shuffled", "caption", *ATTRIBUTES), 0.0)
    monkeypatch.setattr(evaluate, "_caption_use", lambda *a, **k: use)
    monkeypatch.setattr(evaluate, "learning_curve", lambda *a, **k: ([], None))  # no checkpoints
    # No run_info.json here: what the demo would record is checked in test_demo.py.
    monkeypatch.setattr(evaluate, "record_sampling", lambda *a: None)
    config = get_config("runlocal")
    config.eval.num_prompts = config.eval.num_images = N
    return evaluate.run_eval(config, Paths(str(tmp_path)))


def _true_sampler():
    """Prompt i must be test caption i (it gets test image i); an image gets its caption."""

    def image(i, prompt):
        assert prompt == TEST[i]["caption"], (i, prompt)
        return TEST[i]["image"]

    caption_of = {r["image"].tobytes(): r["caption"] for r in TEST}
    return StubSampler(image, lambda i, x: caption_of[x.tobytes()])


def _blind_sampler():
    """Train images and train captions in a fixed order, whatever it is asked."""
    return StubSampler(lambda i, p: TRAIN[i]["image"], lambda i, x: TRAIN[i]["caption"])


@pytest.fixture(scope="module")
def blind(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        return _run(mp, tmp_path_factory.mktemp("blind"), _blind_sampler())


def _accuracies(metrics: dict, prefix: str) -> dict:
    """``{prefix}_*_acc`` entries: the single-shape headline ones and the ``_pair_`` ones."""
    out = {k: v for k, v in metrics.items() if k.startswith(f"{prefix}_") and k.endswith("_acc")}
    return {
        k: v for k, v in out.items() if not k.startswith(("probe_recon", "probe_blur", "probe_acc"))
    }


def test_true_images_score_what_the_probe_scores(monkeypatch, tmp_path):
    sampler = _true_sampler()
    m = _run(monkeypatch, tmp_path, sampler)
    assert sampler.scales == [get_config("runlocal").eval.cfg_scale, None]
    probe = _accuracies(m, "probe")
    assert {f"probe_{a}_acc" for a in (*ATTRIBUTES, "all")} <= set(probe)
    assert 0.5 < m["probe_all_acc"] < 1.0  # the stub probe's deliberate mistakes
    for key, value in probe.items():
        t2i = "t2i" + key[len("probe") :]
        assert m[t2i] == value, key
        assert m[t2i + "_nocfg"] == value, key


def test_true_captions_score_one(monkeypatch, tmp_path):
    m = _run(monkeypatch, tmp_path, _true_sampler())
    assert m["i2t_parsed_frac"] == 1.0
    i2t = _accuracies(m, "i2t")
    assert {f"i2t_{a}_acc" for a in (*ATTRIBUTES, "all")} <= set(i2t)
    assert all(v == 1.0 for v in i2t.values()), i2t


def test_caption_blind_samplers_score_near_chance(blind):
    """Chance is what unrelated scenes score: each test scene against the captions of the
    other test images (every shift), on the same single- or two-shape subset."""
    chance = {"": _chance(1), "_pair": _chance(2)}
    checked = 0
    for prefix, suffix in (("t2i", ""), ("t2i", "_nocfg"), ("i2t", "")):
        for kind, expect in chance.items():
            for a in (*ATTRIBUTES, "all"):
                key = f"{prefix}{kind}_{a}_acc{suffix}"
                if key in blind:
                    assert abs(blind[key] - expect[a]) < 0.2, (key, blind[key], expect[a])
                    checked += 1
        assert blind[f"{prefix}_all_acc{suffix}"] < 0.5 * blind["probe_all_acc"]
    assert checked >= 15


def _chance(num_shapes: int) -> dict:
    truth = [parse_caption(r["caption"]) for r in TEST]
    ids = [i for i, t in enumerate(truth) if len(t["shapes"]) == num_shapes]
    captions = [r["caption"] for r in TEST]
    scores = []
    for shift in range(1, N):
        other = np.roll(captions, shift)
        scores.append(score_captions([other[i] for i in ids], [truth[i] for i in ids]))
    return {a: float(np.mean([x[a] for x in scores])) for a in (*ATTRIBUTES, "all")}
