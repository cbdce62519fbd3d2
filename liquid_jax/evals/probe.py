"""The attribute probe: a small CNN that reads a shapes-world scene from its pixels.

It judges generated images (T2I) the way a human would check the caption: is there a
shape where the caption puts it, and has it the stated colour, kind and size? The scene
is described per *slot*, one slot per anchor position (left, right, top, bottom,
center): each slot is empty or holds one shape. Every shapes-world scene fits (one shape
at any anchor, or two at top/bottom or left/right), so the probe's heads are, per slot,
``occupied`` (2-way), ``color`` (8), ``kind`` (6) and ``size`` (2).

    probe = train_probe(images_u8, attributes, steps=600)      # train-split ground truth
    pred = probe.predict(test_images_u8)                       # {head: int[N, 5]}
    probe.save(path); AttributeProbe.load(path)

The network is trained only on ground-truth images of the train split; its accuracy on
real test images (``evals.scoring.score_images`` with the true captions) says how far
its verdicts on generated images can be trusted. Half of each training batch is softened
(``soften``: a random Gaussian blur and pixel noise), because a decoded image is soft and
a softened shape keeps its colour, kind and size: trained on sharp images only, the probe
matched exact pixels and called 5% of the demo's real test shapes blurred by 1 px the
wrong size.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import logging

from liquid_jax.data.shapes.scene import COLORS, POSITIONS, SHAPES, SIZES

SLOTS = tuple(POSITIONS)  # left, right, top, bottom, center
HEADS = {
    "occupied": 2,
    "color": len(COLORS),
    "kind": len(SHAPES),
    "size": len(SIZES),
}
VOCABS = {"color": tuple(COLORS), "kind": tuple(SHAPES), "size": tuple(SIZES)}
# conv layers: (out channels, stride); 32 px -> 32 -> 16 -> 8 -> 8. The first layer
# keeps full resolution: a small shape is 8 px wide, and its corners tell a star from a
# diamond or a circle.
CONVS = ((16, 1), (32, 2), (64, 2), (64, 1))
HIDDEN = 192


def slot_labels(attributes: list[dict]) -> dict[str, np.ndarray]:
    """Scene dicts (``Scene.to_dict`` or canonical ``parse_caption`` form) -> per-slot
    labels ``{head: int32[N, 5]}``; attributes of empty slots are 0 (masked in the loss)."""
    n = len(attributes)
    out = {h: np.zeros((n, len(SLOTS)), np.int32) for h in HEADS}
    for i, attrs in enumerate(attributes):
        for shape in attrs["shapes"]:
            if isinstance(shape, dict):
                size, color, kind, pos = shape["size"], shape["color"], shape["kind"], shape[
                    "position"]  # fmt: skip
            else:  # (size, color, kind, position) as parse_caption returns it
                size, color, kind, pos = shape
            s = SLOTS.index(pos)
            out["occupied"][i, s] = 1
            out["color"][i, s] = VOCABS["color"].index(color)
            out["kind"][i, s] = VOCABS["kind"].index(kind)
            out["size"][i, s] = VOCABS["size"].index(size)
    return out


# -- the network (plain JAX: a params dict, so saving is an npz) -------------------------


WINDOW = 4  # feature cells (4 px each) on a side of the window read for one slot


def _windows(side: int) -> list[tuple[int, int]]:
    """Top-left feature cell of each slot's window, centred on the slot's anchor."""
    out = []
    for slot in SLOTS:
        fx, fy = POSITIONS[slot]
        cx, cy = round(fx * side), round(fy * side)
        out.append((min(max(cy - WINDOW // 2, 0), side - WINDOW),
                    min(max(cx - WINDOW // 2, 0), side - WINDOW)))  # fmt: skip
    return out


def init_params(key: jax.Array, image_size: int = 32) -> dict[str, jax.Array]:
    params, c_in = {}, 3
    keys = jax.random.split(key, len(CONVS) + 2)
    for i, (c_out, _) in enumerate(CONVS):
        fan_in = 9 * c_in
        params[f"conv{i}_w"] = jax.random.normal(keys[i], (3, 3, c_in, c_out)) * (2 / fan_in) ** 0.5
        params[f"conv{i}_b"] = jnp.zeros((c_out,))
        c_in = c_out
    # One MLP shared by all slots reads: the slot's window, the image's mean feature
    # (context, e.g. a large neighbour reaching into the window) and which slot it is.
    flat = WINDOW * WINDOW * c_in + c_in + len(SLOTS)
    params["fc_w"] = jax.random.normal(keys[-2], (flat, HIDDEN)) * (2 / flat) ** 0.5
    params["fc_b"] = jnp.zeros((HIDDEN,))
    out = sum(HEADS.values())
    params["out_w"] = jax.random.normal(keys[-1], (HIDDEN, out)) * (1 / HIDDEN) ** 0.5
    params["out_b"] = jnp.zeros((out,))
    return params


def apply(params: dict, images: jax.Array) -> dict[str, jax.Array]:
    """images: float32[N, S, S, 3] in [-1, 1] -> ``{head: float32[N, 5, classes]}`` logits."""
    x = images
    for i, (_, stride) in enumerate(CONVS):
        x = jax.lax.conv_general_dilated(
            x, params[f"conv{i}_w"], (stride, stride), "SAME",
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
        )  # fmt: skip
        x = jax.nn.relu(x + params[f"conv{i}_b"])
    n, side = x.shape[0], x.shape[1]
    context = x.mean(axis=(1, 2))
    feats = []
    for s, (r, c) in enumerate(_windows(side)):
        window = x[:, r : r + WINDOW, c : c + WINDOW].reshape(n, -1)
        slot = jnp.broadcast_to(jax.nn.one_hot(s, len(SLOTS)), (n, len(SLOTS)))
        feats.append(jnp.concatenate([window, context, slot], axis=-1))
    h = jax.nn.relu(jnp.stack(feats, axis=1) @ params["fc_w"] + params["fc_b"])
    logits = h @ params["out_w"] + params["out_b"]  # [N, 5, sum(HEADS)]
    out, start = {}, 0
    for head, k in HEADS.items():
        out[head] = logits[..., start : start + k]
        start += k
    return out


def gaussian_blur(images: jax.Array, sigma: jax.Array) -> jax.Array:
    """images: float32[N, S, S, C]; sigma: float32[N] in pixels (0: unchanged). A separable
    5-tap Gaussian, edges repeated."""
    taps = jnp.arange(-2, 3, dtype=jnp.float32)
    kernel = jnp.exp(-0.5 * (taps / jnp.maximum(sigma[:, None], 1e-3)) ** 2)
    kernel = kernel / kernel.sum(axis=1, keepdims=True)  # [N, 5]
    for axis in (1, 2):
        pad = [(0, 0)] * 4
        pad[axis] = (2, 2)
        padded = jnp.pad(images, pad, mode="edge")
        size = images.shape[axis]
        images = sum(kernel[:, i, None, None, None] * jax.lax.slice_in_dim(padded, i, i + size,
                     axis=axis) for i in range(5))  # fmt: skip
    return images


def soften(key: jax.Array, images: jax.Array, max_sigma=1.2, max_noise=0.08) -> jax.Array:
    """Every other image of float32[N, S, S, 3] (in [-1, 1]) blurred (sigma uniform in
    [0, max_sigma] px), and every image given Gaussian pixel noise (std uniform in
    [0, max_noise])."""
    k_sigma, k_noise, k_std = jax.random.split(key, 3)
    n = images.shape[0]
    sigma = jax.random.uniform(k_sigma, (n,), maxval=max_sigma) * (jnp.arange(n) % 2)
    std = jax.random.uniform(k_std, (n, 1, 1, 1), maxval=max_noise)
    return gaussian_blur(images, sigma) + std * jax.random.normal(k_noise, images.shape)


def blurred_u8(images_u8: np.ndarray, sigma: float = 1.0) -> np.ndarray:
    """uint8[N, S, S, 3] blurred by a Gaussian of ``sigma`` px (the check of the probe's
    robustness: a blurred shape keeps its attributes)."""
    x = gaussian_blur(_to_float(images_u8), jnp.full((len(images_u8),), sigma, jnp.float32))
    return np.asarray(jnp.round(jnp.clip(x, -1.0, 1.0) * 127.5 + 127.5)).astype(np.uint8)


def _loss(params, images, labels):
    logits = apply(params, images)
    occupied = labels["occupied"].astype(jnp.float32)
    total = optax.softmax_cross_entropy_with_integer_labels(
        logits["occupied"], labels["occupied"]
    ).mean()
    for head in ("color", "kind", "size"):
        ce = optax.softmax_cross_entropy_with_integer_labels(logits[head], labels[head])
        total += (ce * occupied).sum() / jnp.maximum(occupied.sum(), 1.0)
    return total


def _to_float(images_u8: np.ndarray) -> jax.Array:
    return jnp.asarray(images_u8, jnp.float32) / 127.5 - 1.0


class AttributeProbe:
    """A trained probe: ``predict(uint8[N, S, S, 3]) -> {head: int32[N, 5]}``."""

    def __init__(self, params: dict):
        self.params = {k: jnp.asarray(v) for k, v in params.items()}
        self._predict = jax.jit(lambda p, x: {k: v.argmax(-1) for k, v in apply(p, x).items()})

    def predict(self, images_u8: np.ndarray, batch_size: int = 256) -> dict[str, np.ndarray]:
        parts = []
        for i in range(0, len(images_u8), batch_size):
            chunk = np.asarray(images_u8[i : i + batch_size])
            real = len(chunk)
            if real < batch_size and len(images_u8) > batch_size:  # one compiled shape
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], batch_size - real, 0)])
            out = jax.device_get(self._predict(self.params, _to_float(chunk)))
            parts.append({k: np.asarray(v[:real]) for k, v in out.items()})
        return {k: np.concatenate([p[k] for p in parts]) for k in HEADS}

    def save(self, path: str) -> str:
        np.savez(path, **{k: np.asarray(v) for k, v in self.params.items()})
        return path

    @classmethod
    def load(cls, path: str) -> AttributeProbe:
        with np.load(path) as f:
            return cls({k: f[k] for k in f.files})


def train_probe(
    images_u8: np.ndarray,
    attributes: list[dict],
    *,
    steps: int = 600,
    batch_size: int = 64,
    lr: float = 2e-3,
    seed: int = 0,
) -> AttributeProbe:
    """Fits the probe on ground-truth images and their scene attributes (train split),
    half of each batch softened (``soften``)."""
    labels = slot_labels(attributes)
    params = init_params(jax.random.key(seed), images_u8.shape[1])
    schedule = optax.warmup_cosine_decay_schedule(0.0, lr, min(50, steps // 10), steps)
    tx = optax.adam(schedule)
    opt_state = tx.init(params)

    @jax.jit
    def step(params, opt_state, images, labels, key):
        loss, grads = jax.value_and_grad(_loss)(params, soften(key, images), labels)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    rng, key = np.random.default_rng(seed), jax.random.key(seed)
    t0, order, pos = time.perf_counter(), rng.permutation(len(images_u8)), 0
    for i in range(steps):
        if pos + batch_size > len(order):
            order, pos = rng.permutation(len(images_u8)), 0
        idx = order[pos : pos + batch_size]
        pos += batch_size
        batch_labels = {k: jnp.asarray(v[idx]) for k, v in labels.items()}
        params, opt_state, loss = step(params, opt_state, _to_float(images_u8[idx]), batch_labels,
                                       jax.random.fold_in(key, i))  # fmt: skip
        if (i + 1) % max(1, steps // 5) == 0 or i + 1 == steps:
            logging.info(
                "probe: step %d/%d loss %.4f (%.1fs)", i + 1, steps, float(loss),
                time.perf_counter() - t0,
            )  # fmt: skip
    return AttributeProbe(jax.device_get(params))
