"""HF transformers checkpoint directory <-> JAX ``Transformer`` (safetensors only).

``load_hf`` reads ``config.json`` into a ``TransformerSpec``, then fills every parameter
from the family's mapping table (``hf_mapping``), stacking per-layer tensors into our
scanned arrays. ``save_hf`` runs the same table backwards and writes a directory that
``transformers.AutoModelForCausalLM.from_pretrained`` loads. Directories may be local
or URLs (``gs://``): every file goes through ``fileio``.
"""

from __future__ import annotations

import json
import os
import tempfile

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.experimental import multihost_utils
from jax.sharding import Mesh

from liquid_jax import fileio
from liquid_jax.data.tokenizers.files import copy_files, copy_tokenizer_files
from liquid_jax.errors import InputError, PathNotFoundError
from liquid_jax.export.hf_config import (
    generation_config_from_spec,
    hf_config_from_spec,
    spec_from_hf_config,
)
from liquid_jax.export.hf_mapping import Entry, ignorable, table_for
from liquid_jax.export.hf_safetensors import CheckpointReader, write_checkpoint
from liquid_jax.models.spec import TransformerSpec
from liquid_jax.models.transformer import Transformer
from liquid_jax.parallel import state_shardings


def read_config(path: str) -> dict:
    file = fileio.join(path, "config.json")
    if not fileio.exists(file):
        raise PathNotFoundError(f"{path}: no config.json (not an HF model directory)")
    with fileio.open(file) as f:
        return json.load(f)


def _flat(state: nnx.State) -> dict[tuple[str, ...], nnx.Variable]:
    return {tuple(str(k) for k in path): v for path, v in nnx.to_flat_state(state)}


def _hf_shape(entry: Entry, layer_shape: tuple[int, ...], spec: TransformerSpec):
    abstract = jax.ShapeDtypeStruct(layer_shape, jnp.float32)
    return tuple(jax.eval_shape(lambda x: entry.transform.to_hf(x, spec), abstract).shape)


def _check_entry(reader: CheckpointReader, entry: Entry, our_shape, spec, where) -> None:
    """Every HF tensor of ``entry`` is present with the shape ``config.json`` implies."""
    layer_shape = our_shape[1:] if entry.per_layer else our_shape
    expected = _hf_shape(entry, layer_shape, spec)
    for name in entry.hf_names(spec):
        if name not in reader:
            raise InputError(
                f"{where}: tensor {name!r} is missing from the checkpoint "
                f"(expected shape {expected})"
            )
        got = reader.shape(name)
        if got != expected:
            raise InputError(
                f"{where}: tensor {name!r} has shape {got}, expected {expected} (from config.json)"
            )


def _read_entry(reader: CheckpointReader, entry: Entry, spec) -> np.ndarray:
    """One of our parameters from the checkpoint: converted, stacked when per-layer."""
    parts = [entry.transform.to_ours(reader.get(n), spec) for n in entry.hf_names(spec)]
    return np.stack(parts) if entry.per_layer else parts[0]


def load_hf(
    path: str,
    dtype=jnp.float32,
    vocab_multiple: int = 128,
    mesh: Mesh | None = None,
    compute_dtype=None,
    **spec_overrides,
) -> Transformer:
    """Loads an HF Gemma / Gemma2 / Qwen2 / Llama checkpoint directory as a ``Transformer``.

    Args:
      path: directory (local or URL) with ``config.json`` and ``model.safetensors`` (or
        sharded files with ``model.safetensors.index.json``).
      dtype: parameter dtype (and compute dtype unless ``compute_dtype`` is given).
      vocab_multiple: the embedding table is padded to a multiple of this.
      mesh: place the parameters sharded on this mesh (logical axis rules in force).
      spec_overrides: any other ``TransformerSpec`` field (e.g. ``remat="full"``).

    Raises:
      ValueError: unknown model type, a missing or wrongly shaped tensor, or tensors the
        model does not use; the message names the tensor.
    """
    config = read_config(path)
    spec = spec_from_hf_config(
        config,
        vocab_multiple=vocab_multiple,
        param_dtype=dtype,
        dtype=compute_dtype,
        where=fileio.join(path, "config.json"),
        **spec_overrides,
    )
    reader = CheckpointReader(path)
    abstract = nnx.eval_shape(lambda: Transformer(spec, rngs=nnx.Rngs(0)))
    graphdef, abstract_state = nnx.split(abstract)
    flat = _flat(abstract_state)
    shardings = _flat(state_shardings(abstract_state, mesh)) if mesh is not None else None

    # Check names and shapes (file headers only) before reading any data.
    table = table_for(spec)
    for entry in table:
        _check_entry(reader, entry, flat[entry.ours].get_value().shape, spec, path)
    used = {name for entry in table for name in entry.hf_names(spec)}
    extra = [n for n in reader.names if n not in used and not ignorable(n, spec)]
    if extra:
        raise InputError(
            f"{path}: {len(extra)} unexpected tensors not used by a {spec.family} model "
            f"with this config.json: {extra[:10]}"
        )

    arrays: dict[tuple[str, ...], jax.Array] = {}
    for entry in table:
        target = flat[entry.ours].get_value()
        value = _read_entry(reader, entry, spec).astype(target.dtype)
        if shardings is None:
            arrays[entry.ours] = jnp.asarray(value)
        else:
            sharding = shardings[entry.ours].get_value()
            arrays[entry.ours] = jax.make_array_from_callback(
                value.shape, sharding, lambda index, v=value: v[index]
            )
    missing = sorted(set(flat) - set(arrays))
    if missing:  # a table that does not cover the model is a bug here, not in the input
        raise RuntimeError(f"no HF mapping for parameters {missing}")
    return nnx.merge(graphdef, _filled(abstract_state, arrays))


def _filled(abstract_state: nnx.State, arrays) -> nnx.State:
    """``abstract_state`` with each variable's value replaced (metadata kept)."""
    items = [
        (path, v.replace(arrays[tuple(str(k) for k in path)]))
        for path, v in nnx.to_flat_state(abstract_state)
    ]
    return nnx.from_flat_state(items)


def _to_host(x: jax.Array) -> np.ndarray:
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(jax.device_get(x))


def save_hf(
    model: Transformer,
    path: str,
    tokenizer=None,
    dtype=None,
    max_shard_bytes: int = 5 * 1024**3,
) -> str:
    """Writes ``model`` as an HF directory (config, generation config, safetensors).

    Args:
      model: a ``Transformer`` (sharded or not).
      path: output directory (created; local or URL).
      tokenizer: a directory to copy tokenizer files from, or an object with
        ``save_pretrained`` (an HF tokenizer).
      dtype: dtype of the written tensors; default the model's parameter dtype.
      max_shard_bytes: above this, tensors go to several files plus an index.

    Vocabulary padding rows are dropped. In a multi-process job every process must call
    this (parameters are gathered); only process 0 writes.
    """
    spec = model.spec
    dtype = jnp.dtype(dtype or spec.param_dtype)
    config = hf_config_from_spec(spec, dtype)
    flat = {p: v[...] for p, v in _flat(nnx.state(model, nnx.Param)).items()}
    host = {p: _to_host(x) for p, x in flat.items()}  # every process joins the gathers
    if jax.process_index() != 0:
        return path
    fileio.makedirs(path)

    def tensors():
        for entry in table_for(spec):
            ours = host[entry.ours]
            for i, name in enumerate(entry.hf_names(spec)):
                layer = ours[i] if entry.per_layer else ours
                shape = _hf_shape(entry, layer.shape, spec)
                make = lambda x=layer, e=entry: e.transform.to_hf(x, spec).astype(dtype)
                yield name, shape, dtype, make

    write_checkpoint(path, tensors(), max_shard_bytes)
    with fileio.open(fileio.join(path, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    with fileio.open(fileio.join(path, "generation_config.json"), "w") as f:
        json.dump(generation_config_from_spec(spec), f, indent=2)
    if tokenizer is not None:
        save_tokenizer(tokenizer, path)
    return path


def save_tokenizer(tokenizer, path: str) -> list[str]:
    """Copies tokenizer files from a directory, or calls ``tokenizer.save_pretrained``.

    Either side may be local or a URL; returns the names of the files copied."""
    if hasattr(tokenizer, "save_pretrained"):
        if not fileio.is_url(path):
            tokenizer.save_pretrained(path)
            return []
        # save_pretrained writes local files only: save beside, then upload them.
        with tempfile.TemporaryDirectory() as tmp:
            tokenizer.save_pretrained(tmp)
            copy_files(tmp, path, sorted(os.listdir(tmp)))
        return []
    if not fileio.isdir(tokenizer):
        raise InputError(f"tokenizer {tokenizer!r}: not a directory or an HF tokenizer")
    return copy_tokenizer_files(tokenizer, path)
