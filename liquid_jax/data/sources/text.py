"""Text-only sources: jsonl of ``{"text": ...}`` and plain text files.

Both are random access (``len``, ``src[i]``) and return ``{"id": str, "text": str}``; a
record that cannot be used raises ``BadRecord`` (see ``skips``) naming ``path:line``.

Plain text: by default one document per paragraph (runs of non-blank lines separated
by one or more blank lines; the line breaks inside a paragraph are kept), which suits
books and articles; ``unit="line"`` makes every non-blank line a document (one-sentence
corpora, or text already flattened to one document per line).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from liquid_jax.data.skips import BadRecord
from liquid_jax.data.sources.files import RecordIndex, expand_paths


def parse_json_line(raw: bytes, record_id: str) -> dict:
    """One jsonl line -> dict; raises ``BadRecord("bad_json")``."""
    try:
        value = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BadRecord("bad_json", record_id, str(e)) from None
    if not isinstance(value, dict):
        raise BadRecord("bad_json", record_id, f"a JSON {type(value).__name__}, not an object")
    return value


def string_field(record: dict, key: str, record_id: str, empty_reason: str) -> str:
    """``record[key]`` as a stripped non-empty string, else ``BadRecord``."""
    if key not in record:
        raise BadRecord("missing_field", record_id, f"no {key!r} key; has {sorted(record)[:8]}")
    value = record[key]
    if not isinstance(value, str):
        raise BadRecord("missing_field", record_id, f"{key!r} is a {type(value).__name__}")
    value = value.strip()
    if not value:
        raise BadRecord(empty_reason, record_id, f"{key!r} is empty")
    return value


class TextJsonlSource:
    """Documents from jsonl files, one JSON object per line with a ``text_key`` string.

    Args:
      paths: a file, a glob pattern, or a list of them (read in order).
      text_key: the field holding the document.
    """

    def __init__(self, paths: str | Sequence[str], text_key: str = "text"):
        self.index = RecordIndex(expand_paths(paths), "line")
        self.text_key = text_key
        self.name = f"jsonl text {self.index.paths[0]}" + (
            f" (+{len(self.index.paths) - 1} files)" if len(self.index.paths) > 1 else ""
        )

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, index: int) -> dict:
        record_id = self.index.record_id(index)
        record = parse_json_line(self.index.read(index), record_id)
        return {
            "id": record_id,
            "text": string_field(record, self.text_key, record_id, "empty_text"),
        }

    def __repr__(self) -> str:
        return f"TextJsonlSource({self.index.paths!r}, len={len(self)})"


class PlainTextSource:
    """Documents from UTF-8 text files: one per paragraph (default) or per line.

    Args:
      paths: a file, a glob pattern, or a list of them (read in order).
      unit: ``"paragraph"`` or ``"line"`` (see the module docstring).
    """

    def __init__(self, paths: str | Sequence[str], unit: str = "paragraph"):
        self.index = RecordIndex(expand_paths(paths), unit)
        self.name = f"text {self.index.paths[0]}"

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, index: int) -> dict:
        record_id = self.index.record_id(index)
        try:
            text = self.index.read(index).decode("utf-8").strip()
        except UnicodeDecodeError as e:
            raise BadRecord("bad_text", record_id, f"not UTF-8: {e}") from None
        if not text:
            raise BadRecord("empty_text", record_id)
        return {"id": record_id, "text": text}

    def __repr__(self) -> str:
        return f"PlainTextSource({self.index.paths!r}, unit={self.index.unit!r}, len={len(self)})"
