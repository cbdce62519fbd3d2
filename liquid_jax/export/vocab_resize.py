"""Growing the vocabulary of a ``Transformer`` (text LLM -> text + image codes).

New embedding rows, and new LM-head columns when the head is untied, are the mean of the
existing ones. transformers' ``resize_token_embeddings(..., mean_resizing=True)`` samples
them from N(mean, 1e-9 * Cov); that noise is far below float precision of the rows'
scale, so the exact mean is used here (deterministic, no key needed). With mean rows
the new tokens' logits equal the mean of the old logits, which leaves the text
distribution almost unchanged at the start of training.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx
from jax.sharding import NamedSharding

from liquid_jax.models.transformer import Transformer
from liquid_jax.parallel import state_shardings


def _grow_rows(table, old: int, new: int, padded: int):
    """table: [old_padded, D] -> [padded, D]: rows [old, new) = mean of rows [0, old)."""
    real = table[:old]
    mean = jnp.mean(real.astype(jnp.float32), axis=0).astype(table.dtype)
    grown = jnp.broadcast_to(mean, (new - old, table.shape[1]))
    padding = jnp.zeros((padded - new, table.shape[1]), table.dtype)
    return jnp.concatenate([real, grown, padding], axis=0)


def expand_vocab(model: Transformer, new_vocab_size: int) -> Transformer:
    """A new ``Transformer`` with ``new_vocab_size`` tokens (re-padded to the multiple).

    Rows ``[old, new)`` of ``embed_tokens`` (and columns of an untied ``lm_head``) are the
    mean of the old ones; everything else is shared with ``model``. A sharded model stays
    sharded on the same mesh.
    """
    spec = model.spec
    if new_vocab_size < spec.vocab_size:
        raise ValueError(
            f"expand_vocab: new vocab size {new_vocab_size} is smaller than the current "
            f"{spec.vocab_size}"
        )
    new_spec = spec.replace(vocab_size=new_vocab_size)
    abstract = nnx.eval_shape(lambda: Transformer(new_spec, rngs=nnx.Rngs(0)))
    graphdef, abstract_state = nnx.split(abstract)
    old = {tuple(str(k) for k in p): v.get_value() for p, v in nnx.to_flat_state(nnx.state(model))}

    embedding = old[("embed_tokens", "embedding")]
    mesh = (
        embedding.sharding.mesh
        if isinstance(getattr(embedding, "sharding", None), NamedSharding)
        else None
    )
    shardings = None
    if mesh is not None:
        shardings = {
            tuple(str(k) for k in p): v.get_value()
            for p, v in nnx.to_flat_state(state_shardings(abstract_state, mesh))
        }

    args = (spec.vocab_size, new_vocab_size, new_spec.padded_vocab_size)
    new = dict(old)
    new[("embed_tokens", "embedding")] = _grow_rows(embedding, *args)
    if ("lm_head", "kernel") in old:
        new[("lm_head", "kernel")] = _grow_rows(old[("lm_head", "kernel")].T, *args).T
    items = []
    for path, variable in nnx.to_flat_state(abstract_state):
        key = tuple(str(k) for k in path)
        value = new[key]
        if shardings is not None:
            value = jax.device_put(value, shardings[key])
        items.append((path, variable.replace(value)))
    return nnx.merge(graphdef, nnx.from_flat_state(items))
