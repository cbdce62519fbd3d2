"""Attribute accuracy of images (judged by the probe) and of captions (parsed).

Both compare against a scene in ``parse_caption``'s canonical form: ``{"shapes":
[(size, color, kind, position), ...], ...}``. Per stated shape, colour / kind / size
count as right when the judged scene has a shape *at the stated position* with that
attribute; position counts per image, right when the judged scene occupies exactly the
stated positions (no shape missing, none extra).

    score_images(probe.predict(images), [parse_caption(c) for c in captions])
    score_captions(generated_captions, true_attributes)
"""

from __future__ import annotations

import numpy as np

from liquid_jax.data.shapes.captions import parse_caption
from liquid_jax.evals.probe import SLOTS, VOCABS

ATTRIBUTES = ("color", "shape", "size", "position")
_INDEX = {"size": 0, "color": 1, "kind": 2}


def _empty() -> dict[str, list[float]]:
    return {a: [] for a in ATTRIBUTES}


def _summary(hits: dict[str, list[float]]) -> dict[str, float]:
    out = {a: float(np.mean(v)) if v else 0.0 for a, v in hits.items()}
    pooled = [x for v in hits.values() for x in v]
    out["all"] = float(np.mean(pooled)) if pooled else 0.0
    return out


def predicted_scene(pred: dict[str, np.ndarray], i: int) -> dict[int, tuple[str, str, str]]:
    """Probe outputs of image ``i`` -> ``{slot: (size, color, kind)}`` of occupied slots."""
    return {
        s: (
            VOCABS["size"][pred["size"][i, s]],
            VOCABS["color"][pred["color"][i, s]],
            VOCABS["kind"][pred["kind"][i, s]],
        )
        for s in range(len(SLOTS))
        if pred["occupied"][i, s]
    }


def score_images(pred: dict[str, np.ndarray], targets: list[dict | None]) -> dict[str, float]:
    """Probe predictions ``{head: int[N, 5]}`` vs the canonical scene each image should
    show -> ``{color, shape, size, position, all}`` accuracies in [0, 1]."""
    hits = _empty()
    for i, target in enumerate(targets):
        if target is None:
            raise ValueError(f"score_images: target {i} is not a parseable scene")
        seen = predicted_scene(pred, i)
        stated = {SLOTS.index(s[3]): s for s in target["shapes"]}
        hits["position"].append(float(set(seen) == set(stated)))
        for slot, (size, color, kind, _) in stated.items():
            got = seen.get(slot)
            hits["color"].append(float(got is not None and got[1] == color))
            hits["shape"].append(float(got is not None and got[2] == kind))
            hits["size"].append(float(got is not None and got[0] == size))
    return _summary(hits)


def score_captions(captions: list[str], targets: list[dict]) -> dict[str, float]:
    """Generated captions vs true canonical scenes -> accuracies in [0, 1]; a caption that
    does not parse gets every attribute wrong. Also ``parsed``: the fraction that parse."""
    hits, parsed = _empty(), 0
    for caption, target in zip(captions, targets, strict=True):
        got = parse_caption(caption)
        parsed += got is not None
        said = {s[3]: s for s in got["shapes"]} if got else {}
        stated = {s[3]: s for s in target["shapes"]}
        hits["position"].append(float(bool(got) and set(said) == set(stated)))
        for position, shape in stated.items():
            other = said.get(position)
            for attr, key in (("color", "color"), ("shape", "kind"), ("size", "size")):
                k = _INDEX[key]
                hits[attr].append(float(other is not None and other[k] == shape[k]))
    out = _summary(hits)
    out["parsed"] = parsed / max(len(captions), 1)
    return out
