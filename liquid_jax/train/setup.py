"""What a training run starts from: tokenizer, vocabulary layout and model spec.

Either ``model.init_from`` names an HF-format Liquid directory (written by
``liquid-jax import-hf``: weights, ``liquid_vocab.json``, tokenizer files), or the model
is built from ``model.preset`` / ``model.spec`` with the vocabulary of
``tokenizer.path`` (or a SentencePiece model trained from ``tokenizer.train_corpus``).
"""

from __future__ import annotations

import jax
from absl import logging
from flax import nnx

from liquid_jax import fileio
from liquid_jax.data.sources.specs import open_text_source
from liquid_jax.data.tokenizers.base import TextTokenizer, vocab_layout
from liquid_jax.data.tokenizers.load import load_tokenizer
from liquid_jax.data.tokenizers.sp_train import train_sentencepiece
from liquid_jax.data.vocab import VocabLayout
from liquid_jax.errors import ConfigError
from liquid_jax.export.hf import load_hf, read_config
from liquid_jax.export.hf_config import spec_from_hf_config
from liquid_jax.models import Transformer, TransformerSpec, get_preset
from liquid_jax.runs.layout import TOKENIZER


def _train_tokenizer(tok_cfg, directory: str) -> TextTokenizer:
    source = open_text_source(tok_cfg.train_corpus)
    texts = (source[i]["text"] for i in range(len(source)))
    logging.info("training a %d-piece SentencePiece model on %s", tok_cfg.vocab_size, source.name)
    # Training is deterministic: every host trains the same model, one host writes it.
    out = directory if jax.process_index() == 0 else None
    return train_sentencepiece(texts, tok_cfg.vocab_size, out)


def resolve_tokenizer(config, workdir: str) -> TextTokenizer:
    init_from = config.model.get("init_from", "")
    if init_from:
        return load_tokenizer(init_from)
    tok_cfg = config.tokenizer
    if tok_cfg.get("path", ""):
        return load_tokenizer(tok_cfg.path)
    directory = fileio.join(workdir, TOKENIZER)
    if fileio.exists(fileio.join(directory, "tokenizer.model")):
        return load_tokenizer(directory)
    if not tok_cfg.get("train_corpus", ""):
        raise ConfigError("set model.init_from, tokenizer.path or tokenizer.train_corpus")
    return _train_tokenizer(tok_cfg, directory)


def layout_for_run(config, tokenizer: TextTokenizer) -> VocabLayout:
    """The run's vocabulary layout: ``model.init_from``'s own (``liquid_vocab.json``),
    else the tokenizer's text vocabulary + ``data.num_image_codes`` (no look at the data
    sources, unlike ``data.pipeline.dataset.resolve_layout``)."""
    init_from = config.model.get("init_from", "")
    if init_from:
        return VocabLayout.load(init_from)
    return vocab_layout(tokenizer, int(config.data.num_image_codes))


def model_spec(config, layout: VocabLayout) -> TransformerSpec:
    """The spec from the config; ``model.init_from`` takes the checkpoint's own."""
    m = config.model
    top_level = ("remat", "attn_causal_chunk", "mlp_chunk", "attention", "param_dtype", "dtype")
    misplaced = sorted(set(top_level) & set(m.get("spec", {})))
    if misplaced:
        # model.X would silently win over model.spec.X.
        raise ConfigError(f"set {', '.join(f'model.{k}' for k in misplaced)}, not model.spec.*: "
                         "they apply to every way of building the model")  # fmt: skip
    overrides = {k: m[k] for k in top_level if m.get(k, None)}
    if m.get("init_from", ""):
        spec = spec_from_hf_config(read_config(m.init_from), where=m.init_from)
    elif m.get("preset", ""):
        # A preset is a shape to start from random weights: its vocabulary becomes ours.
        spec = get_preset(m.preset).replace(vocab_size=layout.vocab_size)
    else:
        fields = m.spec.to_dict()
        fields["vocab_size"] = fields.get("vocab_size") or layout.vocab_size
        spec = TransformerSpec.for_family(m.family, **fields)
    if layout.vocab_size > spec.vocab_size:
        raise ConfigError(
            f"model vocabulary {spec.vocab_size} is too small for {layout.text_vocab_size} "
            f"text tokens + {layout.num_image_codes} image codes"
        )
    return spec.replace(**overrides) if overrides else spec


def load_initial_weights(config, model: Transformer, mesh) -> None:
    """Copies ``model.init_from`` weights into the freshly created (sharded) model."""
    spec = model.spec
    loaded = load_hf(
        config.model.init_from,
        dtype=spec.param_dtype,
        vocab_multiple=spec.vocab_multiple,
        mesh=mesh,
        compute_dtype=spec.dtype,
        remat=spec.remat,
    )
    nnx.update(model, nnx.state(loaded, nnx.Param))
    logging.info("initialised from %s", config.model.init_from)
