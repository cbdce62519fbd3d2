"""How ``encode-images`` reads a record and crops its image to the VQGAN's input."""

from __future__ import annotations

import dataclasses

import numpy as np
from PIL import Image

from liquid_jax.data.images import ImageError, nearest_bucket, open_image, resize_center_crop
from liquid_jax.data.skips import BadRecord


@dataclasses.dataclass(frozen=True)
class Preprocess:
    """How an image becomes the VQGAN's input: a square centre crop of ``image_size``,
    or (``buckets``) the nearest of the ``(width, height)`` buckets."""

    image_size: int
    buckets: tuple[tuple[int, int], ...] | None = None

    def shapes(self) -> list[tuple[int, int]]:
        """Every possible input ``(height, width)``, in a fixed order."""
        if self.buckets is None:
            return [(self.image_size, self.image_size)]
        return sorted({(h, w) for w, h in self.buckets})

    def target(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) an image of ``width x height`` is cropped to."""
        if self.buckets is None:
            return self.image_size, self.image_size
        return nearest_bucket(width, height, self.buckets)

    def describe(self) -> dict:
        buckets = [list(b) for b in self.buckets] if self.buckets is not None else None
        return {"image_size": self.image_size, "buckets": buckets}


def load_record(source, index: int, pre: Preprocess):
    """Record ``index`` -> (record, uint8[h, w, 3] cropped image), or the ``BadRecord``."""
    try:
        record = source[index]
        image = record.get("image")
        if image is None:
            try:
                img = open_image(record["image_path"])
            except ImageError as e:
                raise BadRecord("bad_image", record.get("id", index), e.reason) from None
        else:
            img = Image.fromarray(np.asarray(image, np.uint8))
        pixels = np.asarray(resize_center_crop(img, pre.target(*img.size)))
        return record, pixels
    except BadRecord as e:
        return e
    except Exception as e:
        name = getattr(source, "name", type(source).__name__)
        raise RuntimeError(f"encode-images: {name} record {index}: {e}") from e
