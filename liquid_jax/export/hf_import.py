"""``import_hf``: a text LLM from HF -> a Liquid starting point; ``export_hf``: back out.

The merged vocabulary (``liquid_jax.data.vocab.VocabLayout``): the base model's rows,
the three special tokens, then the image codes. Where ``<boi>``, ``<eoi>`` and
``<unconditional>`` go is the tokenizers' rule (``data.tokenizers.base
.plan_special_tokens``): kept when present, Gemma's ``<unused0..2>`` when the tokenizer
has them (as the released Liquid model does, ids 7, 8, 9), otherwise added after the last
tokenizer id (reusing spare embedding rows, e.g. Qwen's, when there are any).

A model that already holds image codes (a released Liquid checkpoint: the tokenizer's
length plus a codebook of rows, ``<boi>`` / ``<eoi>`` / ``<unconditional>`` in the
tokenizer, by name or in ``<unused0..2>``) is imported as it is: converted, with its
``liquid_vocab.json`` written and no rows added (``liquid-jax sample --hf_dir`` also
reads such a directory directly). Directories may be local or URLs (``gs://``).
"""

from __future__ import annotations

import jax.numpy as jnp
from absl import logging

from liquid_jax import fileio
from liquid_jax.data.tokenizers.base import SPECIAL_TOKENS
from liquid_jax.data.tokenizers.files import TokenizerFiles, add_special_tokens
from liquid_jax.data.vocab import VOCAB_FILE, VocabLayout
from liquid_jax.errors import ConfigError, InputError
from liquid_jax.export.hf import load_hf, read_config, save_hf, save_tokenizer
from liquid_jax.export.hf_config import stored_dtype
from liquid_jax.export.vocab_resize import expand_vocab


def _special_ids(tokenizer: TokenizerFiles, model_vocab: int, where: str):
    """(ids of <boi>, <eoi>, <unconditional>; text vocab size; tokens to add to files).

    The tokenizer decides where the three go; this fits them to the model's vocabulary:
    appended ones follow the tokenizer's last id (or, with no tokenizer files, the
    model's last row), and the text vocabulary grows when the model has no spare rows.
    """
    if tokenizer.present and len(tokenizer) > model_vocab:
        raise InputError(
            f"{where}: the tokenizer has {len(tokenizer)} tokens but the model's vocabulary "
            f"is only {model_vocab}: too small"
        )
    first = len(tokenizer) if tokenizer.present else model_vocab
    try:
        how, ids = tokenizer.special_token_ids(next_id=first)
    except ValueError as e:
        raise InputError(f"{where}: {e}") from None
    if how != "append":
        return ids, model_vocab, {}
    return ids, max(model_vocab, first + 3), dict(zip(SPECIAL_TOKENS, ids))


# Rows past the tokenizer fewer than this are spare padding (Qwen keeps a few hundred),
# not a codebook, unless they are exactly the number of codes asked for.
MIN_CODEBOOK = 1024


def _already_expanded(
    tokenizer: TokenizerFiles, model_vocab: int, image_codes: int, where: str
) -> int | None:
    """The image codes of a model that is already a Liquid model, else None.

    Already expanded: the tokenizer names Liquid's special tokens (or has Gemma's
    ``<unused0..2>`` slots for them) and the model has a codebook's worth of rows past
    the tokenizer's last id."""
    if not tokenizer.present:
        return None
    try:
        how, _ = tokenizer.special_token_ids()
    except ValueError:
        return None  # reported with the tokenizer's other problems below
    extra = model_vocab - len(tokenizer)
    if how == "append" or extra <= 0 or (extra != image_codes and extra < MIN_CODEBOOK):
        return None
    if extra != image_codes:
        raise ConfigError(
            f"{where}: already holds {extra} image-code rows after its tokenizer's "
            f"{len(tokenizer)} tokens (an expanded Liquid model), not image_codes="
            f"{image_codes}; pass --image_codes={extra} to import it as it is, or sample it "
            f"directly: liquid-jax sample --hf_dir {where}"
        )
    return extra


def _check_distinct(named: dict[str, int], where: str) -> None:
    """<boi>, <eoi>, <unconditional> must differ from each other and from bos/eos/pad
    (bos, eos and pad may share an id, as in Qwen)."""
    values = list(named.values())
    clash = {k: v for k, v in named.items() if values.count(v) > 1}
    if any(k in clash for k in ("boi_id", "eoi_id", "unconditional_id")):
        raise InputError(f"{where}: special token ids collide: {clash}")


def import_hf(
    hf_dir: str,
    out_dir: str,
    image_codes: int = 8192,
    dtype=None,
    vocab_multiple: int = 128,
) -> VocabLayout:
    """Converts an HF Gemma / Gemma2 / Qwen2 / Llama model into a Liquid starting point.

    Loads ``hf_dir``, reserves ``<boi>``, ``<eoi>``, ``<unconditional>``, appends
    ``image_codes`` rows (mean-initialised, see ``vocab_resize``; none when the model
    already holds them, see the module docstring), and writes to
    ``out_dir`` an HF directory (loadable by ``AutoModelForCausalLM``) with the tokenizer
    files (plus any added special tokens) and ``liquid_vocab.json``.

    Args:
      hf_dir: HF model directory (``config.json``, safetensors, tokenizer files optional;
        local or a URL).
      out_dir: output directory (created; local or a URL).
      image_codes: number of VQGAN codes (8192 for Chameleon's VQGAN).
      dtype: parameter dtype written out; default the checkpoint's own.
      vocab_multiple: padding multiple of the in-memory table (not written out).

    Returns:
      The ``VocabLayout`` that was saved.

    Raises:
      ValueError: ``image_codes`` < 1, a tokenizer larger than the model's vocabulary, or
        special token ids that collide (with each other or bos / eos / pad), or a
        tokenizer holding only some of ``<boi>``, ``<eoi>``, ``<unconditional>``.
    """
    if int(image_codes) < 1:
        raise ConfigError(f"import_hf: image_codes={image_codes} must be a positive number")
    dtype = dtype or stored_dtype(read_config(hf_dir))
    model = load_hf(hf_dir, dtype=dtype, vocab_multiple=vocab_multiple)
    spec = model.spec
    tokenizer = TokenizerFiles(hf_dir)
    expanded = _already_expanded(tokenizer, spec.vocab_size, int(image_codes), hf_dir)
    if expanded:
        (boi, eoi, uncond), text_vocab, added = tokenizer.special_token_ids()[1], len(tokenizer), {}
        logging.info(
            "import-hf: %s already holds %d image codes after %d text tokens (a Liquid "
            "model): converted as it is, no rows added (liquid-jax sample --hf_dir reads it "
            "directly too)",
            hf_dir, expanded, text_vocab,
        )  # fmt: skip
    else:
        (boi, eoi, uncond), text_vocab, added = _special_ids(tokenizer, spec.vocab_size, hf_dir)

    eos = spec.eos_token_id[0] if spec.eos_token_id else None
    bos = spec.bos_token_id if spec.bos_token_id is not None else eos
    if bos is None or eos is None:
        raise InputError(f"{hf_dir}/config.json: needs bos_token_id or eos_token_id")
    pad = spec.pad_token_id if spec.pad_token_id is not None else eos
    named = dict(
        boi_id=boi, eoi_id=eoi, unconditional_id=uncond, bos_id=bos, eos_id=eos, pad_id=pad
    )
    _check_distinct(named, hf_dir)
    layout = VocabLayout(text_vocab_size=text_vocab, num_image_codes=int(image_codes), **named)

    if layout.vocab_size != spec.vocab_size:
        model = expand_vocab(model, layout.vocab_size)
    fileio.makedirs(out_dir)
    save_hf(model, out_dir)
    if tokenizer.present:
        save_tokenizer(hf_dir, out_dir)
        if added:
            add_special_tokens(out_dir, added)
    layout.save(out_dir)
    return layout


def export_hf(src_dir: str, out_dir: str, dtype=None) -> str:
    """Re-writes an HF-format Liquid model directory (weights, tokenizer, vocab layout).

    The weights go through ``load_hf`` / ``save_hf``, so the output is checked and in
    the canonical layout. ``dtype`` defaults to the stored one. Raises ``ValueError``
    when ``liquid_vocab.json`` describes more tokens than the model has.
    """
    dtype = dtype or stored_dtype(read_config(src_dir))
    model = load_hf(src_dir, dtype=dtype)
    layout = None
    if fileio.exists(fileio.join(src_dir, VOCAB_FILE)):
        layout = VocabLayout.load(src_dir)
        if layout.vocab_size > model.spec.vocab_size:
            raise InputError(
                f"{src_dir}: {VOCAB_FILE} needs {layout.vocab_size} tokens "
                f"({layout.text_vocab_size} text + {layout.num_image_codes} image codes) "
                f"but the model's vocabulary is only {model.spec.vocab_size}: too small"
            )
    save_hf(model, out_dir, tokenizer=src_dir, dtype=jnp.dtype(dtype))
    if layout is not None:
        layout.save(out_dir)
    return out_dir
