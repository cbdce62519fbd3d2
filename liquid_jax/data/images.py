"""Image pre- and post-processing as Liquid (Chameleon's image tokenizer) does it.

- ``open_image``: any file PIL reads -> RGB. Transparency (RGBA, LA, palette or ``P``
  with a transparent index) is composited onto white; grayscale, CMYK, 16-bit and float
  images are converted. Bad input raises ``ImageError`` naming the file.
- ``resize_center_crop``: resize (LANCZOS) so the image covers the target, centre crop.
  For a square target this is Chameleon's "short side to target, then crop".
- ``to_model_input`` / ``to_uint8``: uint8 RGB <-> float32 in [-1, 1].
- Aspect-ratio filter (ratio above 2 is dropped from training) and resolution buckets
  for multi-resolution training: ``make_buckets``, ``nearest_bucket``.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageOps

from liquid_jax import fileio
from liquid_jax.errors import InputError

MIN_SIDE = 8  # smaller images carry no usable content at any tokenizer resolution
MAX_ASPECT_RATIO = 2.0
DEFAULT_SIZE = 512
DEFAULT_FACTOR = 16

ImageSource = str | os.PathLike | bytes | Image.Image


class ImageError(InputError):
    """An image that cannot be used: missing, unreadable, truncated, too small, ..."""

    def __init__(self, path, reason: str):
        self.path, self.reason = str(path), reason
        super().__init__(f"image {self.path}: {reason}")


def _name(source: ImageSource, name: str | None) -> str:
    if name is not None:
        return name
    if isinstance(source, bytes):
        return f"<{len(source)} bytes>"
    if isinstance(source, Image.Image):
        return getattr(source, "filename", "") or "<PIL image>"
    return os.fspath(source)


def _to_8bit(img: Image.Image) -> Image.Image:
    """Integer/float single-channel modes ("I;16", "I", "F") -> "L" with the range kept."""
    arr = np.asarray(img).astype(np.float64)
    if img.mode == "F":
        top = 1.0 if arr.size and np.nanmax(arr) <= 1.0 else 255.0
    else:
        # 16-bit data (PNG/TIFF) opens as "I;16*" or "I"; anything above 255 is 16-bit.
        top = 65535.0 if img.mode.startswith("I;16") or (arr.size and arr.max() > 255) else 255.0
    arr = np.clip(np.nan_to_num(arr) / top, 0.0, 1.0) * 255.0
    return Image.fromarray(np.round(arr).astype(np.uint8), "L")


def to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL mode -> RGB; transparent pixels are blended onto white (as Chameleon)."""
    if img.mode == "RGB":
        return img
    if img.mode in ("I", "F") or img.mode.startswith("I;16"):
        img = _to_8bit(img)
    has_alpha = img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info
    if not has_alpha:
        return img.convert("RGB")
    rgba = np.asarray(img.convert("RGBA"), dtype=np.float64)
    alpha = rgba[..., 3:] / 255.0
    if (alpha == 1.0).all():
        return img.convert("RGB")
    # out = (1 - a) * white + a * colour, truncated to uint8 as Chameleon's tokenizer does.
    rgb = (1.0 - alpha) * 255.0 + alpha * rgba[..., :3]
    return Image.fromarray(rgb.astype(np.uint8), "RGB")


def open_image(
    source: ImageSource,
    *,
    min_side: int = MIN_SIDE,
    exif_transpose: bool = True,
    name: str | None = None,
) -> Image.Image:
    """Reads ``source`` (path or URL, encoded bytes or a PIL image) fully, as RGB.

    ``exif_transpose`` applies the camera orientation tag (Chameleon's tokenizer does
    not; photos with the tag otherwise come out rotated). Raises ``ImageError`` for a
    missing, unreadable, truncated or non-image file and for images with a side
    shorter than ``min_side`` pixels.
    """
    label = _name(source, name)
    try:
        if isinstance(source, Image.Image):
            img = source
        elif isinstance(source, bytes):
            img = Image.open(io.BytesIO(source))
        elif fileio.is_url(source):
            img = Image.open(io.BytesIO(fileio.read_bytes(os.fspath(source))))
        else:
            img = Image.open(os.fspath(source))
        img.load()  # decodes now, so truncation surfaces here and not later
        if exif_transpose:
            img = ImageOps.exif_transpose(img)
        img = to_rgb(img)
    except FileNotFoundError:
        raise ImageError(label, "no such file") from None
    except IsADirectoryError:
        raise ImageError(label, "is a directory, not an image file") from None
    except Image.UnidentifiedImageError:
        raise ImageError(label, "not an image file PIL can identify") from None
    except Image.DecompressionBombError as e:
        raise ImageError(label, f"too many pixels ({e})") from None
    except (OSError, SyntaxError, ValueError) as e:
        # PIL reports truncated / corrupt data as OSError (sometimes SyntaxError).
        raise ImageError(label, f"unreadable or truncated image data ({e})") from None
    w, h = img.size
    if min(w, h) < min_side:
        raise ImageError(label, f"{w}x{h} pixels is smaller than the {min_side}-pixel minimum")
    return img


def aspect_ratio(width: int, height: int) -> float:
    """Long side over short side (>= 1)."""
    return max(width, height) / max(1, min(width, height))


def keep_aspect_ratio(width: int, height: int, max_ratio: float = MAX_ASPECT_RATIO) -> bool:
    """Liquid's training filter: images with an aspect ratio above ``max_ratio`` are dropped."""
    return aspect_ratio(width, height) <= max_ratio


def resize_center_crop(img: Image.Image, size: int | tuple[int, int]) -> Image.Image:
    """Resizes with LANCZOS so the image covers ``size`` (int or (width, height)), then
    centre crops to exactly that size.

    For a square ``size`` this is Chameleon's tokenizer: the short side becomes ``size``
    (``round`` of the scaled long side), then the crop offset is ``(W - size) // 2``.
    """
    tw, th = (size, size) if isinstance(size, int) else size
    w, h = img.size
    scale = max(tw / w, th / h)
    new = (max(tw, round(scale * w)), max(th, round(scale * h)))
    if new != (w, h):
        img = img.resize(new, Image.LANCZOS)
    x0, y0 = (img.width - tw) // 2, (img.height - th) // 2
    return img.crop((x0, y0, x0 + tw, y0 + th))


def to_model_input(img: Image.Image | np.ndarray) -> np.ndarray:
    """uint8 RGB (PIL or array [H, W, 3]) -> float32[H, W, 3] in [-1, 1]."""
    arr = np.asarray(img, dtype=np.float32)
    return arr / 255.0 * 2.0 - 1.0


def to_uint8(images) -> np.ndarray:
    """float[..., H, W, 3] (about [-1, 1]) -> uint8[..., H, W, 3]: clamp to [-1, 1], then
    map to [0, 255] with rounding.

    Chameleon's tokenizer truncates instead (``(x + 1) / 2 * 255`` cast to uint8), which
    is at most one level darker and does not invert ``to_model_input`` exactly.
    """
    x = np.clip(np.asarray(images, dtype=np.float32), -1.0, 1.0)
    return np.round((x + 1.0) * 127.5).astype(np.uint8)


def load_image(
    source: ImageSource,
    size: int | tuple[int, int] = DEFAULT_SIZE,
    *,
    min_side: int = MIN_SIDE,
    name: str | None = None,
) -> np.ndarray:
    """File -> float32[H, W, 3] in [-1, 1], ready for ``VQGAN.encode`` (add a batch axis).

    ``size``: an int for Liquid's square crop, or a (width, height) bucket.
    """
    img = open_image(source, min_side=min_side, name=name)
    return to_model_input(resize_center_crop(img, size))


def make_buckets(
    target_pixels: int = DEFAULT_SIZE * DEFAULT_SIZE,
    factor: int = DEFAULT_FACTOR,
    max_ratio: float = MAX_ASPECT_RATIO,
) -> tuple[tuple[int, int], ...]:
    """Resolution buckets ``(width, height)``: both multiples of ``factor``, area close to
    ``target_pixels``, aspect ratio at most ``max_ratio``; sorted by width/height.

    For each width ``w`` (a multiple of ``factor``) the height is the multiple of
    ``factor`` nearest ``target_pixels / w``; every bucket also comes transposed. The
    square bucket is included when ``sqrt(target_pixels)`` is a multiple of ``factor``.
    """
    if factor < 1 or target_pixels < factor * factor or max_ratio < 1:
        raise ValueError(
            f"buckets: need factor >= 1, target_pixels >= factor^2 and max_ratio >= 1, got "
            f"factor={factor}, target_pixels={target_pixels}, max_ratio={max_ratio}"
        )
    side = math.sqrt(target_pixels)
    w_max = int(side * math.sqrt(max_ratio)) + factor
    buckets = set()
    for w in range(factor, w_max + 1, factor):
        h = max(factor, factor * round(target_pixels / (w * factor)))
        if aspect_ratio(w, h) <= max_ratio + 1e-9:
            # Both orientations, so portrait and landscape get the same choices.
            buckets.update({(w, h), (h, w)})
    return tuple(sorted(buckets, key=lambda b: (b[0] / b[1], b[0])))


def nearest_bucket(
    width: int, height: int, buckets: Sequence[tuple[int, int]] | None = None
) -> tuple[int, int]:
    """The bucket ``(w, h)`` whose aspect ratio is closest (in log space) to the image's;
    ties go to the larger area. ``buckets`` defaults to ``make_buckets()``."""
    if width < 1 or height < 1:
        raise ValueError(f"nearest_bucket: image size {width}x{height} must be positive")
    buckets = make_buckets() if buckets is None else buckets
    target = math.log(width / height)
    return min(buckets, key=lambda b: (round(abs(math.log(b[0] / b[1]) - target), 9), -b[0] * b[1]))


def resize_to_bucket(img: Image.Image, buckets: Sequence[tuple[int, int]] | None = None):
    """Resize + centre crop ``img`` to its nearest bucket; returns (image, (w, h))."""
    bucket = nearest_bucket(*img.size, buckets)
    return resize_center_crop(img, bucket), bucket
