"""Random-access data sources, opened from short spec strings, and skipping iteration.

Every source has ``len(src)`` and ``src[i]`` (so Grain's ``MapDataset.source`` can shard
and shuffle it), returns plain dicts, and raises ``BadRecord`` (``skips``) for a record
it cannot use. A spec is ``KIND:PATH`` with optional ``?key=value&key=value`` options:

=====================  =====================================================  ==========
spec                   source                                                 records
=====================  =====================================================  ==========
``jsonl:F``            ``TextJsonlSource`` (``{"text": ...}`` per line;       text
                       ``?key=`` another field)
``txt:F``              ``PlainTextSource``: one document per paragraph        text
                       (``?unit=line``: per line)
``tfds:DIR``           ``TfdsSource`` (``?split=train&text_key=&image_key=``)  text or
                                                                              image-text
``shapes_text:N``      ``ShapesTextSource``, N in-memory documents            text
                       (``?seed=&split=``)
``jsonl:F``            ``ImageTextJsonlSource`` (Liquid's                     image-text
                       ``{"image_path", "text"}``), via ``open_image_text_source``
``folder:DIR``         ``ImageFolderSource`` (sidecar .txt / captions.jsonl   image-text
                       / captions.csv)
``codes:DIR``          ``CodeRecordSource`` (``?prefix=&cache=``)             codes
``shapes:N``           ``ShapesCodeSource``: stand-in codes                   codes
                       (``?seed=&split=&grid=&levels=``)
=====================  =====================================================  ==========

``F`` may be a glob pattern; every path may be local or a URL (``gs://``; ``codes:``
reads one in the bucket or, with ``?cache=DIR``, from a local copy). Text records are
``{"id", "text"}``; image-text records ``{"id", "image_path", "caption", "width",
"height", "image"}``; code records are ``code_records.CodeRecord``. ``iterate_valid``
walks a source, skipping and counting bad records (what ``encode-images`` does), and
ends with a summary.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Sequence

from liquid_jax.data.skips import BadRecord, SkipCounter, SkipPolicy
from liquid_jax.data.sources.code_records import CodeRecordSource
from liquid_jax.data.sources.images import ImageFolderSource, ImageTextJsonlSource
from liquid_jax.data.sources.shapes import ShapesCodeSource, ShapesTextSource
from liquid_jax.data.sources.text import PlainTextSource, TextJsonlSource
from liquid_jax.data.sources.tfds import TfdsSource
from liquid_jax.errors import ConfigError, InputError

TEXT_KINDS = ("jsonl", "txt", "tfds", "shapes_text")
IMAGE_TEXT_KINDS = ("jsonl", "folder", "tfds")
CODE_KINDS = ("codes", "shapes")
_TRUE = ("1", "true", "yes")


def parse_spec(spec: str) -> tuple[str, str, dict[str, str]]:
    """``"kind:path?a=1&b=x"`` -> ``("kind", "path", {"a": "1", "b": "x"})``."""
    kind, sep, rest = spec.partition(":")
    if not sep or not kind or not rest:
        raise ConfigError(f"source spec {spec!r}: expected KIND:PATH[?key=value&...]")
    path, _, query = rest.partition("?")
    options = {}
    for part in filter(None, query.split("&")):
        key, eq, value = part.partition("=")
        if not eq:
            raise ConfigError(f"source spec {spec!r}: option {part!r} is not key=value")
        options[key] = value
    return kind, path, options


def _take(options: dict[str, str], spec: str, allowed: dict[str, type]) -> dict:
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ConfigError(
            f"source spec {spec!r}: unknown options {unknown}; known {sorted(allowed)}"
        )
    out = {}
    for key, value in options.items():
        kind = allowed[key]
        out[key] = value.lower() in _TRUE if kind is bool else kind(value)
    return out


def open_text_source(spec: str):
    """A text-only source from a spec (``jsonl``, ``txt``, ``tfds``, ``shapes_text``)."""
    kind, path, options = parse_spec(spec)
    if kind == "jsonl":
        return TextJsonlSource(path, **_rename(_take(options, spec, {"key": str}), key="text_key"))
    if kind == "txt":
        return PlainTextSource(path, **_take(options, spec, {"unit": str}))
    if kind == "tfds":
        source = TfdsSource(path, **_take(options, spec, {"split": str, "text_key": str}))
        if source.kind != "text":
            raise ConfigError(f"source spec {spec!r}: has images; use it as an image-text source")
        return source
    if kind == "shapes_text":
        return ShapesTextSource(int(path), **_take(options, spec, {"seed": int, "split": str}))
    raise ConfigError(f"source spec {spec!r}: text sources are {TEXT_KINDS}")


_IMAGE_OPTIONS = {"decode": bool, "max_aspect_ratio": float, "min_side": int}


def open_image_text_source(spec: str):
    """An image-text source from a spec (``jsonl``, ``folder``, ``tfds``)."""
    kind, path, options = parse_spec(spec)
    if kind == "jsonl":
        allowed = {**_IMAGE_OPTIONS, "image_key": str, "text_key": str}
        return ImageTextJsonlSource(path, **_take(options, spec, allowed))
    if kind == "folder":
        return ImageFolderSource(path, **_take(options, spec, _IMAGE_OPTIONS))
    if kind == "tfds":
        allowed = {"split": str, "image_key": str, "text_key": str, "max_aspect_ratio": float}
        source = TfdsSource(path, **_take(options, spec, {**allowed, "min_side": int}))
        if source.kind != "image_text":
            raise ConfigError(f"source spec {spec!r}: has no image feature")
        return source
    raise ConfigError(f"source spec {spec!r}: image-text sources are {IMAGE_TEXT_KINDS}")


def open_code_source(spec: str):
    """A code-record source from a spec (``codes``, ``shapes``)."""
    kind, path, options = parse_spec(spec)
    if kind == "codes":
        return CodeRecordSource(path, **_take(options, spec, {"prefix": str, "cache": str}))
    if kind == "shapes":
        allowed = {"seed": int, "split": str, "grid": int, "levels": int, "image_size": int}
        return ShapesCodeSource(int(path), **_take(options, spec, allowed))
    raise ConfigError(f"source spec {spec!r}: code sources are {CODE_KINDS}")


def _rename(options: dict, **names: str) -> dict:
    return {names.get(k, k): v for k, v in options.items()}


class ConcatSource:
    """Several sources as one: index ``i`` runs through them in order."""

    def __init__(self, sources: Sequence):
        if not sources:
            raise ValueError("ConcatSource needs at least one source")
        self.sources = list(sources)
        self._ends = []
        total = 0
        for source in self.sources:
            total += len(source)
            self._ends.append(total)
        if total == 0:
            raise InputError(f"all sources are empty: {[_name(s) for s in self.sources]}")
        self.name = " + ".join(_name(s) for s in self.sources)

    def __len__(self) -> int:
        return self._ends[-1]

    def __getitem__(self, index: int):
        if not 0 <= index < len(self):
            raise IndexError(f"{self.name}: index {index} out of [0, {len(self)})")
        which = bisect.bisect_right(self._ends, index)
        start = self._ends[which - 1] if which else 0
        return self.sources[which][index - start]

    def __repr__(self) -> str:
        return f"ConcatSource({self.name}, len={len(self)})"


def _name(source) -> str:
    return getattr(source, "name", type(source).__name__)


def iterate_valid(
    source,
    counter: SkipCounter | None = None,
    *,
    policy: SkipPolicy | None = None,
    indices: Sequence[int] | None = None,
) -> Iterator[tuple[int, dict]]:
    """Yields ``(index, record)`` for the good records of ``source``, in order.

    Bad records are counted on ``counter`` (one is made from ``policy`` if not given);
    the thresholds are checked as it goes and once more at the end, and the summary is
    logged when the pass completes.
    """
    counter = counter or SkipCounter(_name(source), policy)
    for index in range(len(source)) if indices is None else indices:
        try:
            record = source[index]
        except BadRecord as e:
            counter.skip_error(e)
            counter.check()
            continue
        counter.ok()
        yield index, record
    counter.log_summary()
    counter.check(final=True)
