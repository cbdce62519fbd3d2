"""Image-text sources on disk: Liquid's jsonl, and image folders with captions.

Every record is validated when read and comes back as::

    {"id": str, "image_path": str, "caption": str, "width": int, "height": int,
     "image": uint8[H, W, 3]}        # "image" only with decode=True

``width``/``height`` are the original size (after the EXIF orientation). A record that
cannot be used raises ``BadRecord`` with one of the reasons ``bad_json``,
``missing_field``, ``empty_caption``, ``missing_caption``, ``missing_file``,
``bad_image``, ``too_small``, ``aspect_ratio`` (long side over short side above
``max_aspect_ratio``, 2 as in Liquid's training data).

- ``ImageTextJsonlSource``: lines ``{"image_path": ..., "text": ...}`` (Liquid's format);
  relative image paths are relative to the jsonl file's folder; a path may be a URL.
- ``ImageFolderSource``: a folder of images with captions from, in order of preference,
  ``captions.jsonl`` (``{"file" | "image_path" | "image": ..., "text" | "caption": ...}``),
  ``captions.csv`` (a header row naming the same columns), or a ``.txt`` file beside
  each image with the same stem (``cat.png`` + ``cat.txt``).

Files and folders may be local or URLs (``gs://``); everything is read through ``fileio``.
"""

from __future__ import annotations

import csv
import glob
import io
import os
from collections.abc import Sequence

import numpy as np
from PIL import Image

from liquid_jax import fileio
from liquid_jax.data.images import ImageError, open_image
from liquid_jax.data.skips import BadRecord
from liquid_jax.data.sources.files import RecordIndex, expand_paths
from liquid_jax.data.sources.text import parse_json_line, string_field
from liquid_jax.errors import InputError, PathNotFoundError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")
FILE_KEYS = ("file", "image_path", "image")
CAPTION_KEYS = ("text", "caption")
_ROTATED = (5, 6, 7, 8)  # EXIF orientations that swap width and height


def check_image(
    path: str,
    record_id: str,
    *,
    decode: bool = True,
    max_aspect_ratio: float = 2.0,
    min_side: int = 8,
) -> tuple[np.ndarray | None, int, int]:
    """Validates one image file -> (uint8[H, W, 3] or None, width, height).

    ``decode=False`` only reads the header (size and EXIF orientation): fast, but a
    truncated file is only found when decoded later.
    """
    if not fileio.isfile(path):
        raise BadRecord("missing_file", record_id, f"no image file {path}")
    image = None
    if decode:
        # images.py is the one place that knows how Liquid reads images.

        try:
            img = open_image(path, min_side=1)
        except ImageError as e:
            raise BadRecord("bad_image", record_id, f"{path}: {e.reason}") from None
        image = np.asarray(img)
        width, height = img.size
    else:
        try:
            with fileio.open(path, "rb") as f, Image.open(f) as img:
                width, height = img.size
                if img.getexif().get(0x0112) in _ROTATED:
                    width, height = height, width
        except (OSError, SyntaxError, ValueError) as e:
            raise BadRecord("bad_image", record_id, f"{path}: {e}") from None
    if min(width, height) < min_side:
        raise BadRecord("too_small", record_id, f"{path}: {width}x{height} < {min_side} px")
    ratio = max(width, height) / max(1, min(width, height))
    if ratio > max_aspect_ratio:
        raise BadRecord(
            "aspect_ratio",
            record_id,
            f"{path}: {width}x{height}, ratio {ratio:.2f} > {max_aspect_ratio}",
        )
    return image, width, height


class _ImageChecks:
    """Shared validation settings and record assembly."""

    def __init__(self, decode: bool, max_aspect_ratio: float, min_side: int):
        self.decode, self.max_aspect_ratio, self.min_side = decode, max_aspect_ratio, min_side

    def _record(self, record_id: str, path: str, caption: str) -> dict:
        image, width, height = check_image(
            path,
            record_id,
            decode=self.decode,
            max_aspect_ratio=self.max_aspect_ratio,
            min_side=self.min_side,
        )
        out = {"id": record_id, "image_path": path, "caption": caption}
        out.update(width=width, height=height)
        if image is not None:
            out["image"] = image
        return out


def _first_key(record: dict, keys: Sequence[str], record_id: str) -> str:
    for key in keys:
        if key in record:
            return key
    raise BadRecord("missing_field", record_id, f"none of {list(keys)}; has {sorted(record)[:8]}")


class ImageTextJsonlSource(_ImageChecks):
    """Liquid's jsonl: one ``{"image_path": ..., "text": ...}`` object per line.

    Args:
      paths: a jsonl file, a glob pattern, or a list of them.
      image_key, text_key: field names.
      decode: decode the image (``record["image"]``) or only validate its header.
      max_aspect_ratio, min_side: the image filters.
    """

    def __init__(
        self,
        paths: str | Sequence[str],
        *,
        image_key: str = "image_path",
        text_key: str = "text",
        decode: bool = True,
        max_aspect_ratio: float = 2.0,
        min_side: int = 8,
    ):
        super().__init__(decode, max_aspect_ratio, min_side)
        self.index = RecordIndex(expand_paths(paths), "line")
        self.image_key, self.text_key = image_key, text_key
        self.name = f"image-text jsonl {self.index.paths[0]}"

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, index: int) -> dict:
        record_id = self.index.record_id(index)
        record = parse_json_line(self.index.read(index), record_id)
        caption = string_field(record, self.text_key, record_id, "empty_caption")
        rel = string_field(record, self.image_key, record_id, "missing_field")
        folder = fileio.dirname(self.index.path(index))
        path = rel if fileio.is_url(rel) else fileio.join(folder, rel)
        return self._record(record_id, path, caption)

    def __repr__(self) -> str:
        return f"ImageTextJsonlSource({self.index.paths!r}, len={len(self)})"


class ImageFolderSource(_ImageChecks):
    """Images under ``folder`` with captions (see the module docstring for the layouts).

    Record ids are image paths relative to ``folder`` (or ``captions.jsonl:LINE`` for a
    line that names no image).
    """

    def __init__(
        self,
        folder: str,
        *,
        decode: bool = True,
        max_aspect_ratio: float = 2.0,
        min_side: int = 8,
    ):
        super().__init__(decode, max_aspect_ratio, min_side)
        if not fileio.isdir(folder):
            raise PathNotFoundError(f"{folder}: no such image folder")
        self.folder = folder
        self.name = f"image folder {folder}"
        # (record id, image path or None, caption or None, BadRecord or None)
        self._entries: list[tuple[str, str | None, str | None, BadRecord | None]] = []
        if fileio.isfile(fileio.join(folder, "captions.jsonl")):
            self.layout = "captions.jsonl"
            self._read_jsonl(fileio.join(folder, "captions.jsonl"))
        elif fileio.isfile(fileio.join(folder, "captions.csv")):
            self.layout = "captions.csv"
            self._read_csv(fileio.join(folder, "captions.csv"))
        else:
            self.layout = "sidecar .txt"
            for path in self._images():
                self._entries.append((fileio.relpath(path, folder), path, None, None))
        if not self._entries:
            raise InputError(f"{folder}: no images or caption rows found ({self.layout})")

    def _images(self) -> list[str]:
        pattern = fileio.join(glob.escape(self.folder), "**", "*")
        files = fileio.glob(pattern)
        return sorted(f for f in files if f.lower().endswith(IMAGE_EXTENSIONS) and fileio.isfile(f))

    def _add_row(self, row: dict, where: str) -> None:
        try:
            rel = string_field(row, _first_key(row, FILE_KEYS, where), where, "missing_field")
        except BadRecord as e:
            self._entries.append((where, None, None, e))
            return
        record_id = rel
        try:
            caption = string_field(row, _first_key(row, CAPTION_KEYS, rel), rel, "empty_caption")
            error = None
        except BadRecord as e:
            caption, error = None, e
        self._entries.append((record_id, fileio.join(self.folder, rel), caption, error))

    def _read_jsonl(self, path: str) -> None:
        index = RecordIndex([path], "line")
        for i in range(len(index)):
            where = f"captions.jsonl:{index.line(i)}"
            try:
                row = parse_json_line(index.read(i), where)
            except BadRecord as e:
                self._entries.append((where, None, None, e))
                continue
            self._add_row(row, where)

    def _read_csv(self, path: str) -> None:
        text = fileio.read_bytes(path).decode("utf-8")
        for line, row in enumerate(csv.DictReader(io.StringIO(text, newline="")), start=2):
            self._add_row({k: v for k, v in row.items() if k is not None}, f"captions.csv:{line}")

    def __len__(self) -> int:
        return len(self._entries)

    def __getitem__(self, index: int) -> dict:
        record_id, path, caption, error = self._entries[index]
        if error is not None:
            raise error
        if caption is None:  # sidecar layout: the caption lives in IMAGE_STEM.txt
            caption = self._sidecar_caption(record_id, path)
        return self._record(record_id, path, caption)

    @staticmethod
    def _sidecar_caption(record_id: str, path: str) -> str:
        txt = os.path.splitext(path)[0] + ".txt"
        try:
            text = fileio.read_bytes(txt).decode("utf-8")
            caption = text.replace("\r\n", "\n").replace("\r", "\n").strip()  # as open() reads
        except FileNotFoundError:
            raise BadRecord("missing_caption", record_id, f"no caption file {txt}") from None
        except (OSError, UnicodeDecodeError) as e:
            raise BadRecord("missing_caption", record_id, f"{txt}: {e}") from None
        if not caption:
            raise BadRecord("empty_caption", record_id, f"{txt} is empty")
        return caption

    def __repr__(self) -> str:
        return f"ImageFolderSource({self.folder!r}, {self.layout}, len={len(self)})"
