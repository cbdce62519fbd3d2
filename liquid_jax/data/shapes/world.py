"""The synthetic shapes world: write it as a tfds ArrayRecord dataset, read it back.

    build_shapes_world("/tmp/shapes", num_train=4000, num_val=200, num_test=200)
    train = load_shapes_world("/tmp/shapes", "train")    # random access, len()
    train[3] -> {"image": uint8[32, 32, 3], "caption": str, "attributes": dict, "index": 3}
    text = load_shapes_text("/tmp/shapes", "train")      # {"text": str, "index": int}
    generate_images(1000, 32, seed=0, split="train")     # uint8[1000, 32, 32, 3], no files

The records are those of ``examples`` (a pure function of seed, split, index); scene
generation lives in ``scene``/``draw``/``captions``/``text``, the tfds builders in
``tfds``. The sources are plain
``__len__``/``__getitem__`` objects, ready for ``grain.MapDataset.source``.
"""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import tensorflow_datasets as tfds
from tensorflow_datasets.core.utils import tqdm_utils

from liquid_jax.data.shapes.captions import caption_scene, parse_caption, scene_attributes
from liquid_jax.data.shapes.draw import render_scene
from liquid_jax.data.shapes.examples import SPLITS, image_text_record, text_record
from liquid_jax.data.shapes.sample import sample_scene
from liquid_jax.data.shapes.scene import GRAIN, TEXTURES, Scene
from liquid_jax.data.shapes.tfds import VERSION, ShapesWorld, ShapesWorldText, world_style_params
from liquid_jax.errors import ConfigError, PathNotFoundError

IMAGE_DATASET, TEXT_DATASET = "shapes_world", "shapes_world_text"

__all__ = [
    "SPLITS",
    "Scene",
    "ShapesWorldSource",
    "build_shapes_world",
    "caption_scene",
    "generate_images",
    "image_text_record",
    "load_shapes_text",
    "load_shapes_world",
    "parse_caption",
    "render_scene",
    "sample_scene",
    "scene_attributes",
    "text_record",
]


def generate_images(
    num: int,
    image_size: int = 32,
    *,
    seed: int = 0,
    split: str = "train",
    start: int = 0,
    textures=TEXTURES,
    grain: float = GRAIN,
    **style,
) -> np.ndarray:
    """uint8[num, S, S, 3]: images ``start .. start + num - 1`` of ``split``, in memory.

    The same images ``build_shapes_world`` writes with that seed and style (for the
    VQGAN, which needs no captions or files).
    """
    images = np.zeros((num, image_size, image_size, 3), np.uint8)
    for i in range(num):
        record = image_text_record(
            seed, split, start + i, image_size, textures=textures, grain=grain, **style
        )
        images[i] = record["image"]
    return images


def dataset_dir(out_dir: str, name: str = IMAGE_DATASET) -> str:
    return os.path.join(out_dir, name, VERSION)


def _prepare(builder_cls, out_dir: str, params: dict, overwrite: bool) -> str:
    path = dataset_dir(out_dir, builder_cls.name)
    if os.path.exists(os.path.join(path, "dataset_info.json")):
        existing = tfds.builder_from_directory(path).info.metadata
        if dict(existing or {}) == params:
            return path  # already written with the same parameters
        if not overwrite:
            raise ValueError(
                f"{path} holds a shapes world with {dict(existing or {})}, not {params}; "
                "pass overwrite=True or another out_dir"
            )
        shutil.rmtree(path)
    builder = builder_cls(data_dir=out_dir, file_format="array_record", **params)
    # tfds draws progress bars by default; they only clutter the logs of a quick build.
    was_active = tqdm_utils._active
    tfds.display_progress_bar(False)
    try:
        builder.download_and_prepare()
    finally:
        tfds.display_progress_bar(was_active)
    return path


def build_shapes_world(
    out_dir: str,
    num_train: int,
    num_val: int,
    num_test: int,
    image_size: int = 32,
    seed: int = 0,
    *,
    num_text_train: int | None = None,
    num_text_val: int | None = None,
    num_text_test: int | None = None,
    textures=TEXTURES,
    grain: float = GRAIN,
    overwrite: bool = False,
    **style,
) -> dict[str, str]:
    """Writes the image-text and text-only datasets under ``out_dir``.

    ``textures``, ``grain`` and the other ``style`` keys (``shapes.sample.STYLE_DEFAULTS``:
    ``backgrounds``, ``layout``, ``holdout``) set the images' style (``sample_scene``).

    Text documents default to as many as images per split. Calling again with the same
    parameters reuses the files; with different ones raises unless ``overwrite``.
    Returns ``{"shapes_world": dir, "shapes_world_text": dir}``.
    """
    image_sizes = {"train": num_train, "validation": num_val, "test": num_test}
    text_sizes = {
        "train": num_train if num_text_train is None else num_text_train,
        "validation": num_val if num_text_val is None else num_text_val,
        "test": num_test if num_text_test is None else num_text_test,
    }
    paths = {}
    style = world_style_params(textures=textures, grain=grain, **style)
    for cls, sizes, extra in ((ShapesWorld, image_sizes, style), (ShapesWorldText, text_sizes, {})):
        params = {"seed": int(seed), "image_size": int(image_size), "split_sizes": sizes, **extra}
        paths[cls.name] = _prepare(cls, out_dir, params, overwrite)
    return paths


class ShapesWorldSource:
    """Random access to one split: ``len(src)``, ``src[i]`` -> decoded record dict.

    Image records: ``{"image": uint8[S, S, 3], "caption": str, "attributes": dict,
    "index": int}``; text records: ``{"text": str, "index": int}``.
    """

    def __init__(self, path: str, split: str):
        if not os.path.exists(os.path.join(path, "dataset_info.json")):
            raise PathNotFoundError(f"{path}: no tfds dataset (run build_shapes_world first)")
        builder = tfds.builder_from_directory(path)
        if split not in builder.info.splits:
            raise ConfigError(f"{path}: no split {split!r}; has {list(builder.info.splits)}")
        self.path, self.split = path, split
        self.metadata = dict(builder.info.metadata or {})
        self._source = builder.as_data_source(split=split)

    def __len__(self) -> int:
        return len(self._source)

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self):
            raise IndexError(f"{self.path} [{self.split}]: index {index} out of [0, {len(self)})")
        return self._decode(self._source[index], index)

    def __getitems__(self, indices) -> list[dict]:
        return [self._decode(r, i) for r, i in zip(self._source.__getitems__(indices), indices)]

    def _decode(self, record: dict, index: int) -> dict:
        try:
            out = {k: v.decode("utf-8") if isinstance(v, bytes) else v for k, v in record.items()}
            out["index"] = int(out["index"])
            if "attributes" in out:
                out["attributes"] = json.loads(out["attributes"])
        except (KeyError, ValueError) as e:
            raise ValueError(f"{self.path} [{self.split}] record {index}: bad record: {e}") from e
        return out

    def __repr__(self) -> str:
        return f"ShapesWorldSource({self.path!r}, {self.split!r}, len={len(self)})"


def load_shapes_world(out_dir: str, split: str) -> ShapesWorldSource:
    """The captioned images of ``split`` written by ``build_shapes_world``."""
    return ShapesWorldSource(dataset_dir(out_dir, IMAGE_DATASET), split)


def load_shapes_text(out_dir: str, split: str) -> ShapesWorldSource:
    """The text-only documents of ``split`` written by ``build_shapes_world``."""
    return ShapesWorldSource(dataset_dir(out_dir, TEXT_DATASET), split)
