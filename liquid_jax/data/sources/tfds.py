"""A prepared tfds dataset (ArrayRecord files) as a random-access source, no TensorFlow.

    TfdsSource("/data/my_ds/1.0.0", "train")     # the folder holding dataset_info.json

reads ``tfds.builder_from_directory(dir).as_data_source(split)``. Which features hold
what is guessed (``image``; ``caption`` or ``text``) or given. Records come back as the
other sources' records:

- image-text: ``{"id", "caption", "image": uint8[H, W, 3], "width", "height"}``;
- text-only (no image feature): ``{"id", "text"}``.

Records that cannot be used raise ``BadRecord`` (``bad_record`` for a record tfds fails
to decode, ``empty_caption``/``empty_text``, ``too_small``, ``aspect_ratio``).

A ``gs://`` folder works as tfds reads it: the metadata through etils.epath, the
ArrayRecord files through array_record's own Cloud Storage client (see
``remote_shards``; tfds offers no local copy).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from liquid_jax import fileio
from liquid_jax.data.images import to_rgb
from liquid_jax.data.skips import BadRecord
from liquid_jax.errors import ConfigError, PathNotFoundError

TEXT_KEYS = ("caption", "text")


class TfdsSource:
    """One split of a tfds dataset directory.

    Args:
      directory: the versioned dataset folder (holding ``dataset_info.json``).
      split: split name, or a tfds split expression (``"train[:90%]"``).
      image_key: image feature; default ``"image"`` when present, else text-only.
      text_key: caption / document feature; default the first of ``caption``, ``text``.
      max_aspect_ratio, min_side: the image filters (as the other image sources).
    """

    def __init__(
        self,
        directory: str,
        split: str = "train",
        *,
        image_key: str | None = None,
        text_key: str | None = None,
        max_aspect_ratio: float = 2.0,
        min_side: int = 8,
    ):
        # TensorFlow Datasets (about 0.3 s, and TensorFlow when present) only for this source.
        import tensorflow_datasets as tfds

        if not fileio.isfile(fileio.join(directory, "dataset_info.json")):
            raise PathNotFoundError(f"{directory}: no dataset_info.json (not a prepared tfds dir)")
        builder = tfds.builder_from_directory(directory)
        features = set(builder.info.features.keys())
        if image_key is None and "image" in features:
            image_key = "image"
        if text_key is None:
            text_key = next((k for k in TEXT_KEYS if k in features), None)
        for what, key in (("image_key", image_key), ("text_key", text_key)):
            if key is not None and key not in features:
                raise ConfigError(f"{directory}: {what}={key!r} is not a feature; has {features}")
        if text_key is None:
            raise ConfigError(
                f"{directory}: no text feature among {sorted(features)}; set text_key"
            )
        self.directory, self.split = directory, split
        self.image_key, self.text_key = image_key, text_key
        self.kind = "image_text" if image_key else "text"
        self.max_aspect_ratio, self.min_side = max_aspect_ratio, min_side
        self.name = f"tfds {builder.info.name} [{split}]"
        self._source = builder.as_data_source(split=split)

    def __len__(self) -> int:
        return len(self._source)

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self):
            raise IndexError(f"{self.name}: index {index} out of [0, {len(self)})")
        record_id = f"{self.directory}[{self.split}]:{index}"
        try:
            record = self._source[index]
        except Exception as e:  # tfds/PIL decode errors have no common type
            raise BadRecord("bad_record", record_id, f"{type(e).__name__}: {e}") from None
        text = record[self.text_key]
        text = (text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)).strip()
        if self.kind == "text":
            if not text:
                raise BadRecord("empty_text", record_id)
            return {"id": record_id, "text": text}
        if not text:
            raise BadRecord("empty_caption", record_id)
        image = _rgb(np.asarray(record[self.image_key]), record_id)
        height, width = image.shape[:2]
        if min(width, height) < self.min_side:
            raise BadRecord("too_small", record_id, f"{width}x{height} < {self.min_side} px")
        if max(width, height) / min(width, height) > self.max_aspect_ratio:
            raise BadRecord("aspect_ratio", record_id, f"{width}x{height}")
        return {"id": record_id, "caption": text, "image": image, "width": width, "height": height}

    def __repr__(self) -> str:
        return f"TfdsSource({self.directory!r}, {self.split!r}, {self.kind}, len={len(self)})"


def _rgb(image: np.ndarray, record_id: str) -> np.ndarray:
    """uint8[H, W] / [H, W, 1|3|4] -> uint8[H, W, 3] (alpha onto white, as ``images``)."""
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or image.shape[-1] not in (1, 3, 4) or image.dtype != np.uint8:
        raise BadRecord("bad_image", record_id, f"image {image.dtype}{list(image.shape)}")
    if image.shape[-1] == 1:
        return np.repeat(image, 3, axis=-1)
    if image.shape[-1] == 4:
        return np.asarray(to_rgb(Image.fromarray(image, "RGBA")))
    return image
