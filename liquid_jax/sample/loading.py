"""A ``Sampler`` for the model in a run directory (``runs.load_model``) and its VQGAN.

The VQGAN is a taming checkpoint (directory, yaml, ``.ckpt`` or ``.safetensors``):
``vqgan=``, else a ``vqgan/`` folder or ``vqgan.yaml`` in the HF directory or workdir,
else the one a train run's ``run_info.json`` names.
"""

from __future__ import annotations

import jax.numpy as jnp

from liquid_jax.export import load_vqgan
from liquid_jax.runs.load import load_model
from liquid_jax.sample.api import Sampler


def load_for_sampling(
    workdir: str | None = None,
    *,
    hf_dir: str | None = None,
    vqgan: str | None = None,
    mesh=None,
    dtype=jnp.float32,
    **sampler_kwargs,
) -> Sampler:
    """A ``Sampler`` for the model in ``hf_dir`` (or ``workdir``) and its VQGAN.

    Raises ``runs.load.NoModelError`` when there is neither a train workdir nor an HF
    export, ``FileNotFoundError`` for a missing ``vqgan`` path. ``sampler_kwargs`` go to
    ``Sampler`` (``context``, ``size_prefix``, ``batch_size``).
    """
    loaded = load_model(workdir, hf_dir=hf_dir, vqgan=vqgan, mesh=mesh, dtype=dtype)
    image_model = load_vqgan(loaded.vqgan, mesh=mesh) if loaded.vqgan else None
    return Sampler(
        loaded.model, loaded.layout, loaded.tokenizer, image_model, mesh=mesh, **sampler_kwargs
    )
