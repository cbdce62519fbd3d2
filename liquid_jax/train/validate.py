"""What ``train`` checks before it builds anything: every path the config names exists.

``model.init_from`` (an import-hf directory), the tokenizer, ``model.vqgan`` and every
data source are looked up through ``fileio``, so a ``gs://`` URL is checked in its
bucket and a local path on this machine. Each problem is one ``UserError`` naming the
config key and the path. ``liquid-jax train --dry_run`` runs only this (on every worker
when a launcher runs it there, where the paths must exist), and ``save_config`` records
the resolved config in the workdir.
"""

from __future__ import annotations

import sys

import jax
from absl import logging

from liquid_jax import fileio
from liquid_jax.data.sources.specs import CODE_KINDS, TEXT_KINDS, parse_spec
from liquid_jax.data.tokenizers.base import HF_TOKENIZER_FILE, SP_MODEL_FILE
from liquid_jax.errors import ConfigError, PathNotFoundError
from liquid_jax.runs.layout import HF_CONFIG, TOKENIZER, TRAIN_CONFIG, VOCAB

# Source kinds whose PATH is a file or a glob of files; a folder; a count (in memory).
FILE_KINDS = ("jsonl", "txt")
FOLDER_KINDS = ("tfds", "folder", "codes")
COUNT_KINDS = ("shapes_text", "shapes")


def _exists(path: str, key: str) -> bool:
    """``fileio.exists``, with a bucket that cannot be read (no credentials, no network)
    reported against ``key``."""
    try:
        return fileio.exists(path)
    except ConfigError:
        raise
    except Exception as e:  # gcsfs / gfile raise their own errors for unreadable URLs
        raise PathNotFoundError(f"{key}: {path}: cannot be read from here ({e})") from e


def check_init_from(path: str, key: str = "model.init_from") -> None:
    """An import-hf directory: HF ``config.json``, Liquid's vocabulary, a tokenizer."""
    if not _exists(path, key):
        raise PathNotFoundError(f"{key}: {path}: no such directory")
    for name, what in ((HF_CONFIG, "an HF model config"), (VOCAB, "Liquid's vocabulary")):
        if not _exists(fileio.join(path, name), key):
            raise PathNotFoundError(
                f"{key}: {path}: no {name} ({what}); make the directory with "
                "`liquid-jax import-hf --hf_dir BASE --out DIR`"
            )
    check_tokenizer_dir(path, key)


def check_tokenizer_dir(path: str, key: str) -> None:
    if not _exists(path, key):
        raise PathNotFoundError(f"{key}: {path}: no such directory")
    if not any(_exists(fileio.join(path, n), key) for n in (SP_MODEL_FILE, HF_TOKENIZER_FILE)):
        raise PathNotFoundError(
            f"{key}: {path}: no tokenizer ({SP_MODEL_FILE} or {HF_TOKENIZER_FILE})"
        )


def check_source(spec: str, key: str, kinds: tuple[str, ...]) -> None:
    """One data source spec (``KIND:PATH[?options]``): its kind fits ``key`` and its
    files (a path or a glob, local or ``gs://``) or folder exist."""
    try:
        kind, path, _ = parse_spec(spec)
    except ConfigError as e:
        raise ConfigError(f"{key}: {e}") from None
    if kind not in kinds:
        raise ConfigError(f"{key}: {spec!r}: kind {kind!r} is not one of {', '.join(kinds)}")
    if kind in COUNT_KINDS:
        if not path.isdigit():
            raise ConfigError(f"{key}: {spec!r}: {kind}:N takes a number of records")
        return
    if kind in FILE_KINDS:
        try:
            found = fileio.glob(path)
        except ConfigError:
            raise
        except Exception as e:  # an unreadable bucket, as in _exists
            raise PathNotFoundError(f"{key}: {path}: cannot be listed from here ({e})") from e
        if not found:
            what = "the pattern matches no files" if fileio.has_wildcards(path) else "no such file"
            raise PathNotFoundError(f"{key}: {path}: {what}")
    elif not _exists(path, key):
        raise PathNotFoundError(f"{key}: {path}: no such directory")


def _saved_tokenizer(workdir: str) -> bool:
    """The workdir holds a tokenizer of an earlier start (False when it cannot be read
    from here: then the config must say how to make one)."""
    try:
        return fileio.exists(fileio.join(workdir, TOKENIZER, SP_MODEL_FILE))
    except Exception:  # a bucket unreadable from here (no gcsfs, no credentials)
        return False


def check_config(config, workdir: str, data: bool = True) -> None:
    """Raises a ``UserError`` naming the key and path of the first thing ``config`` names
    that does not exist; ``data``: the data sources too (False when the caller feeds the
    batches itself)."""
    model, tok = config.model, config.tokenizer
    init_from = model.get("init_from", "")
    if init_from:
        check_init_from(init_from)
    elif tok.get("path", ""):
        check_tokenizer_dir(tok.path, "tokenizer.path")
    elif not _saved_tokenizer(workdir):
        if not tok.get("train_corpus", ""):
            raise ConfigError("set model.init_from, tokenizer.path or tokenizer.train_corpus")
        check_source(tok.train_corpus, "tokenizer.train_corpus", TEXT_KINDS)
    if model.get("vqgan", "") and not _exists(model.vqgan, "model.vqgan"):
        raise PathNotFoundError(f"model.vqgan: {model.vqgan}: no such file or directory")
    if not data:
        return
    d = config.data
    if not d.get("text_sources", ()) and not d.get("image_text_sources", ()):
        raise ConfigError("data.text_sources and data.image_text_sources are both empty")
    sections = [("data", d), ("data.validation", d.get("validation", {}))]
    for prefix, section in sections:
        for name, kinds in (("text_sources", TEXT_KINDS), ("image_text_sources", CODE_KINDS)):
            for spec in section.get(name, ()) or ():
                check_source(spec, f"{prefix}.{name}", kinds)


def save_config(config, workdir: str) -> None:
    """Process 0 writes the resolved config (flags and overrides applied) to
    ``workdir/train_config.json`` at every start, and logs it."""
    if jax.process_index() != 0:
        return
    text = config.to_json_best_effort(indent=2, sort_keys=True)
    fileio.write_text(fileio.join(workdir, TRAIN_CONFIG), text + "\n")
    logging.info("config (saved as %s):\n%s", TRAIN_CONFIG, text)


def check_platform(expected: str | None) -> str:
    """What JAX sees here (``"8 gpu devices (NVIDIA H100)"``); a ``ConfigError`` when
    ``expected`` (cpu, gpu, tpu) is given and the devices are of another platform, which
    is how a launcher stops a job whose venv lacks the accelerator's JAX."""
    devices = jax.devices()
    found = f"{len(devices)} {devices[0].platform} devices ({devices[0].device_kind})"
    if expected and devices[0].platform != expected:
        raise ConfigError(
            f"--expect_platform {expected}: JAX sees {found} with {sys.executable}; "
            f"install the [{expected}] extra there (pip install -e '.[{expected}]')"
        )
    return found
