"""tfds builders that write the shapes world as ArrayRecord (no TensorFlow needed).

Two datasets under one ``data_dir``:

- ``shapes_world/1.0.0``: ``image`` (PNG, uint8[S, S, 3]), ``caption`` (text),
  ``attributes`` (JSON text of ``Scene.to_dict()``), ``index`` (int64);
- ``shapes_world_text/1.0.0``: ``text``, ``index``.

Splits train/validation/test. Shuffling is disabled so record ``i`` of a split is
``index == i``: the files are a deterministic function of the metadata (seed, image
size, counts) kept in ``metadata.json``. Readers need no builder class:
``tfds.builder_from_directory(path).as_data_source(split)`` (see ``shapes_world``).
"""

from __future__ import annotations

import io
import json

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

from liquid_jax.data.shapes.examples import SPLITS, image_text_record, text_record
from liquid_jax.data.shapes.sample import STYLE_DEFAULTS, check_world_style
from liquid_jax.data.shapes.scene import GRAIN, TEXTURES
from liquid_jax.errors import ConfigError

VERSION = "1.0.0"


def png_bytes(image: np.ndarray) -> bytes:
    """uint8[H, W, 3] -> PNG bytes (tfds's Image feature needs TF to encode arrays)."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


class _ShapesBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Common parts: parameters travel in ``metadata.json``; no downloads."""

    VERSION = tfds.core.Version(VERSION)

    def __init__(
        self,
        *,
        seed: int,
        split_sizes: dict[str, int],
        image_size: int,
        extra_params: dict | None = None,
        **kwargs,
    ):
        unknown = set(split_sizes) - set(SPLITS)
        if unknown:
            raise ConfigError(f"unknown splits {sorted(unknown)}; known: {SPLITS}")
        # Set before super().__init__, which may already build the DatasetInfo.
        self._params = {
            "seed": int(seed),
            "image_size": int(image_size),
            "split_sizes": {k: int(v) for k, v in split_sizes.items()},
            **(extra_params or {}),
        }
        super().__init__(**kwargs)

    @tfds.core.utils.classproperty
    @classmethod
    def code_path(cls):
        # No checksums or metadata files beside this module. (tfds's default probe of the
        # module path needs the optional `importlib_resources` package.)
        return None

    @property
    def params(self) -> dict:
        return self._params

    def _split_generators(self, dl_manager):
        del dl_manager
        return {
            split: self._generate_examples(split, n)
            for split, n in self._params["split_sizes"].items()
            if n > 0
        }

    def _dataset_info(self, features, description):
        return tfds.core.DatasetInfo(
            builder=self,
            description=description,
            features=tfds.features.FeaturesDict(features),
            metadata=tfds.core.MetadataDict(self._params),
            disable_shuffling=True,  # record i == index i, in generation order
        )


def world_style_params(**style) -> dict:
    """The style as the metadata records it: ``textures`` and ``grain`` always, the other
    keys only where they differ from ``STYLE_DEFAULTS`` (so worlds written before those
    keys existed keep their metadata)."""
    full = check_world_style(**style)
    default = check_world_style()
    always = ("textures", "grain")
    return {k: v for k, v in full.items() if k in always or v != default[k]}


class ShapesWorld(_ShapesBuilder):
    """Captioned images of the shapes world (see ``liquid_jax.data.shapes.scene``).

    The style (``shapes.sample.STYLE_DEFAULTS``: ``textures``, ``grain``, ``backgrounds``,
    ``layout``, ``holdout``, ``p_two``) joins the metadata.
    """

    def __init__(self, *, textures=TEXTURES, grain: float = GRAIN, **kwargs):
        style_keys = [k for k in STYLE_DEFAULTS if k in kwargs]
        style = {k: kwargs.pop(k) for k in style_keys}
        params = world_style_params(textures=textures, grain=grain, **style)
        super().__init__(extra_params=params, **kwargs)

    def _info(self):
        size = self._params["image_size"]
        return self._dataset_info(
            {
                "image": tfds.features.Image(shape=(size, size, 3), encoding_format="png"),
                "caption": tfds.features.Text(),
                "attributes": tfds.features.Text(),
                "index": np.int64,
            },
            "Synthetic shapes: one or two coloured shapes with captions and attributes.",
        )

    def _generate_examples(self, split, n):
        seed, size = self._params["seed"], self._params["image_size"]
        style = {k: self._params[k] for k in STYLE_DEFAULTS if k in self._params}
        style["textures"] = tuple(style["textures"])
        for index in range(n):
            record = image_text_record(seed, split, index, size, **style)
            yield (
                index,
                {
                    "image": png_bytes(record["image"]),
                    "caption": record["caption"],
                    "attributes": json.dumps(record["attributes"]),
                    "index": index,
                },
            )


class ShapesWorldText(_ShapesBuilder):
    """Text-only documents about the shapes world and simple facts."""

    def _info(self):
        return self._dataset_info(
            {"text": tfds.features.Text(), "index": np.int64},
            "Templated sentences about the shapes world, arithmetic and orderings.",
        )

    def _generate_examples(self, split, n):
        seed = self._params["seed"]
        for index in range(n):
            yield index, text_record(seed, split, index)
