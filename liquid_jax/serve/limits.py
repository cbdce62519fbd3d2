"""What a request may ask for, checked before it is queued.

Every field of a request is read through ``Fields``: a known name, the right JSON type,
inside its range, else ``RequestError`` naming the field (the page shows the message,
the server answers 400). Uploads are opened in memory only: their size is capped before
they are read, their pixel count before they are decoded. Nothing from a request ever
becomes a file path.
"""

from __future__ import annotations

import dataclasses
import io
import math

from PIL import Image

from liquid_jax.data.images import ImageError, open_image
from liquid_jax.errors import InputError


class RequestError(InputError):
    """A request the server answers with 400 and this message."""


@dataclasses.dataclass(frozen=True)
class Limits:
    """Caps on one request and on the queue.

    Attributes:
      max_body_bytes: the largest request body (an upload or a JSON request).
      max_pixels: the most pixels an uploaded image may have (width * height).
      max_images: images per T2I request.
      max_prompt_chars: characters of a caption, question or chat message.
      max_new_tokens: the most tokens an I2T / chat request may ask for.
      max_queued: requests waiting or running at once; more are answered 503.
      max_kept: finished requests whose results are kept for polling.
    """

    max_body_bytes: int = 8 * 2**20
    max_pixels: int = 4096 * 4096
    max_images: int = 8
    max_prompt_chars: int = 2000
    max_new_tokens: int = 512
    max_queued: int = 32
    max_kept: int = 64


class Fields:
    """The fields of a JSON request (a dict); each read checks name, type and range."""

    def __init__(self, values, task: str, allowed: set[str]):
        if not isinstance(values, dict):
            raise RequestError(f"{task}: the request body must be a JSON object")
        unknown = sorted(set(values) - allowed)
        if unknown:
            raise RequestError(f"{task}: unknown field(s) {', '.join(unknown)}")
        self.values, self.task = values, task

    def text(self, name: str, max_chars: int, required: bool = True) -> str | None:
        value = self.values.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            if required:
                raise RequestError(f"{self.task}: {name} is empty")
            return None
        if not isinstance(value, str):
            raise RequestError(f"{self.task}: {name} must be a string")
        if len(value) > max_chars:
            raise RequestError(
                f"{self.task}: {name} has {len(value)} characters; at most {max_chars}"
            )
        return value

    def number(self, name: str, default, lo, hi, integer: bool = False):
        """``default`` when absent; an int (``integer``) or float in ``[lo, hi]``."""
        value = self.values.get(name, default)
        kind = "an integer" if integer else "a number"
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise RequestError(f"{self.task}: {name} must be {kind}")
        if integer and float(value) != int(value):
            raise RequestError(f"{self.task}: {name} must be {kind}")
        if not math.isfinite(value) or not lo <= value <= hi:
            raise RequestError(f"{self.task}: {name}={value} must be in [{lo}, {hi}]")
        return int(value) if integer else float(value)


def read_upload(data: bytes, limits: Limits) -> Image.Image:
    """An uploaded image file's bytes -> RGB PIL image, or ``RequestError`` saying why
    not (empty, not an image, too many pixels, unreadable). The pixel count is read
    from the header, before anything is decoded."""
    if not data:
        raise RequestError("upload: no file was sent")
    try:
        with Image.open(io.BytesIO(data)) as header:
            width, height = header.size
    except Image.UnidentifiedImageError:
        raise RequestError("upload: not an image file (PNG, JPEG, WebP, GIF, ...)") from None
    except Image.DecompressionBombError:
        raise RequestError(f"upload: too many pixels; at most {limits.max_pixels}") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise RequestError(f"upload: unreadable image ({e})") from None
    if width * height > limits.max_pixels:
        raise RequestError(
            f"upload: {width}x{height} is {width * height} pixels; at most {limits.max_pixels}"
        )
    try:
        return open_image(data, name="upload")
    except ImageError as e:
        raise RequestError(f"upload: {e.reason}") from None
