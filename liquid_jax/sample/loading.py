"""A ``Sampler`` for the model in a run directory (``runs.load_model``) and its VQGAN.

The VQGAN is a taming checkpoint (directory, yaml, ``.ckpt`` or ``.safetensors``):
``vqgan=``, else a ``vqgan/`` folder or ``vqgan.yaml`` in the HF directory or workdir,
else the one a train run's ``run_info.json`` names. The released Liquid model loads as
downloaded: ``load_for_sampling(hf_dir="Liquid_V1_7B", vqgan="chameleon/")``.
"""

from __future__ import annotations

from collections.abc import Sequence

from jax.sharding import Mesh

from liquid_jax.errors import InputError
from liquid_jax.export import load_vqgan
from liquid_jax.parallel import MeshConfig, make_mesh
from liquid_jax.runs.load import load_model, sampling_dtype
from liquid_jax.sample.api import Sampler


def sampling_mesh(mesh: Mesh | MeshConfig | str | None) -> Mesh | None:
    """A ``Mesh``, a ``MeshConfig`` or ``"tensor=8"``-style text (``MeshConfig.parse``)
    -> the mesh to sample on (None: one device)."""
    if mesh is None or mesh == "" or isinstance(mesh, Mesh):
        return mesh or None
    return make_mesh(MeshConfig.parse(mesh) if isinstance(mesh, str) else mesh)


def load_for_sampling(
    workdir: str | None = None,
    *,
    hf_dir: str | None = None,
    vqgan: str | None = None,
    mesh: Mesh | MeshConfig | str | None = None,
    dtype=None,
    special_tokens: Sequence[str] | None = None,
    **sampler_kwargs,
) -> Sampler:
    """A ``Sampler`` for the model in ``hf_dir`` (or ``workdir``) and its VQGAN.

    ``dtype``: ``"bfloat16"`` / ``"float32"`` for the weights and the computation (None:
    float32 on CPU, bfloat16 on accelerators), cast once at load. ``mesh``: shard the
    model over devices (``"tensor=8"``: the heads, MLP and vocabulary, the image-code
    columns of the head included, split 8 ways). ``special_tokens``: the tokenizer's
    names of ``<boi>``, ``<eoi>``, ``<unconditional>`` when the directory has no
    ``liquid_vocab.json`` (default ``<unused0..2>``, the released model's).

    Raises ``runs.load.NoModelError`` when there is neither a train workdir nor an HF
    model, ``FileNotFoundError`` for a missing ``vqgan`` path, ``InputError`` for a
    VQGAN whose codebook differs from the model's image codes. ``sampler_kwargs`` go to
    ``Sampler`` (``context``, ``size_prefix``, ``batch_size``, ``quantize="int8"``).
    """
    mesh = sampling_mesh(mesh)
    loaded = load_model(
        workdir,
        hf_dir=hf_dir,
        vqgan=vqgan,
        mesh=mesh,
        dtype=sampling_dtype(dtype),
        special_tokens=special_tokens,
    )
    image_model = load_vqgan(loaded.vqgan, mesh=mesh) if loaded.vqgan else None
    codes = loaded.layout.num_image_codes
    if image_model is not None and image_model.config.n_embed != codes:
        raise InputError(
            f"{loaded.vqgan}: the VQGAN has {image_model.config.n_embed} codes but the model "
            f"in {loaded.source} has {codes} image codes ({loaded.layout.vocab_size} tokens - "
            f"{loaded.layout.text_vocab_size} text): not the VQGAN this model was trained with"
        )
    return Sampler(
        loaded.model, loaded.layout, loaded.tokenizer, image_model, mesh=mesh, **sampler_kwargs
    )
