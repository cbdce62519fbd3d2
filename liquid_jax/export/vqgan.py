"""taming / Chameleon VQGAN checkpoints <-> the JAX ``VQGAN``.

On disk (as shipped with Chameleon and Liquid): ``vqgan.yaml`` (taming's config:
``model.target: taming.models.vqgan.VQModel``, ``model.params.{embed_dim, n_embed,
ddconfig, lossconfig}``) next to ``vqgan.ckpt`` (torch ``{"state_dict": {...}}``) and/or
``vqgan.safetensors`` (the same keys, no pickle, no torch needed).

The JAX module tree is taming's, so a parameter's NNX path is its taming key up to the
leaf: ``kernel`` <-> ``weight`` (conv, HWIO <-> OIHW), ``scale`` <-> ``weight``
(GroupNorm), and the codebook ``quantize.embedding`` <-> ``quantize.embedding.weight``.
A ``.ckpt`` is only ever read with ``torch.load(..., weights_only=True)``. Paths may be
local or URLs (``gs://``): every file goes through ``fileio``.
"""

from __future__ import annotations

import fnmatch
import io
import os
import pickle
import posixpath

import jax
import jax.numpy as jnp
import numpy as np
import yaml
from absl import logging
from flax import nnx
from jax.sharding import Mesh
from safetensors.numpy import save_file

from liquid_jax import fileio
from liquid_jax.errors import InputError, PathNotFoundError
from liquid_jax.export.safetensors_files import read_safetensors, write_through
from liquid_jax.models.vqgan import VQGAN
from liquid_jax.models.vqgan_config import VQGANConfig
from liquid_jax.parallel.sharding import state_shardings

CONFIG_FILE = "vqgan.yaml"
CKPT_FILE = "vqgan.ckpt"
SAFETENSORS_FILE = "vqgan.safetensors"
TAMING_TARGET = "taming.models.vqgan.VQModel"
# taming's stand-in loss: the discriminator/LPIPS weights are not part of the tokenizer.
DUMMY_LOSS = "taming.modules.losses.vqperceptual.DummyLoss"
IGNORED_PREFIXES = ("loss.",)  # discriminator + LPIPS of a training checkpoint
DDCONFIG_FIELDS = (
    "double_z", "z_channels", "resolution", "in_channels", "out_ch", "ch", "ch_mult",
    "num_res_blocks", "attn_resolutions", "dropout",
)  # fmt: skip
# Ours, under a top-level liquid_jax key (taming reads only model.params).
EXTRA_FIELDS = ("beta", "legacy", "l2_normalize", "encode_tile", "decode_tile")

# NNX leaf name -> taming leaf name.
_LEAF = {"kernel": "weight", "scale": "weight", "bias": "bias"}


# -- names ---------------------------------------------------------------------------


def taming_key(path: tuple) -> str:
    """An NNX parameter path -> its taming state_dict key."""
    parts = [str(p) for p in path]
    if parts == ["quantize", "embedding"]:
        return "quantize.embedding.weight"
    return ".".join(parts[:-1] + [_LEAF[parts[-1]]])


def _to_torch_layout(path: tuple, x: np.ndarray) -> np.ndarray:
    # Conv kernels: flax HWIO -> torch OIHW.
    return np.transpose(x, (3, 2, 0, 1)) if path[-1] == "kernel" else x


def _from_torch_layout(path: tuple, x: np.ndarray) -> np.ndarray:
    return np.transpose(x, (2, 3, 1, 0)) if path[-1] == "kernel" else x


def _torch_shape(path: tuple, shape: tuple) -> tuple:
    return (shape[3], shape[2], shape[0], shape[1]) if path[-1] == "kernel" else tuple(shape)


# -- config --------------------------------------------------------------------------


def config_to_taming(config: VQGANConfig) -> dict:
    """The yaml dict taming (and Chameleon's tokenizer) reads."""
    dd = {k: getattr(config, k) for k in DDCONFIG_FIELDS}
    dd["ch_mult"], dd["attn_resolutions"] = list(dd["ch_mult"]), list(dd["attn_resolutions"])
    out = {
        "model": {
            "target": TAMING_TARGET,
            "params": {
                "embed_dim": config.embed_dim,
                "n_embed": config.n_embed,
                "ddconfig": dd,
                "lossconfig": {"target": DUMMY_LOSS},
            },
        }
    }
    extras = {k: getattr(config, k) for k in EXTRA_FIELDS}
    if extras != {k: VQGANConfig.__dataclass_fields__[k].default for k in EXTRA_FIELDS}:
        out["liquid_jax"] = extras
    return out


def config_from_taming(cfg: dict, **overrides) -> VQGANConfig:
    """A taming yaml dict (whole file, or its ``model``/``model.params``) -> VQGANConfig."""
    extras = cfg.get("liquid_jax", {}) or {}
    model = cfg.get("model", cfg)
    target = model.get("target", TAMING_TARGET)
    if "VQModel" not in str(target):
        logging.warning("vqgan yaml: model.target is %r, reading it as taming's VQModel", target)
    params = model.get("params", model)
    if params.get("remap"):
        raise InputError("vqgan yaml: codebook remapping (model.params.remap) is not supported")
    dd = dict(params.get("ddconfig") or {})
    if not dd or "embed_dim" not in params or "n_embed" not in params:
        raise InputError(
            "vqgan yaml: expected model.params.{embed_dim, n_embed, ddconfig}, got keys "
            f"{sorted(params)}"
        )
    unsupported = {
        k: dd[k]
        for k, ok in (("attn_type", "vanilla"), ("resamp_with_conv", True), ("tanh_out", False),
                      ("give_pre_end", False), ("use_linear_attn", False))
        if k in dd and dd[k] != ok
    }  # fmt: skip
    if unsupported:
        raise InputError(f"vqgan yaml: unsupported ddconfig settings {unsupported}")
    fields = {k: dd[k] for k in DDCONFIG_FIELDS if k in dd}
    fields.update(embed_dim=params["embed_dim"], n_embed=params["n_embed"])
    fields.update({k: extras[k] for k in EXTRA_FIELDS if k in extras})
    fields.update(overrides)
    return VQGANConfig(**fields)


# -- state dicts ---------------------------------------------------------------------


def vqgan_to_state_dict(model: VQGAN) -> dict[str, np.ndarray]:
    """The model's parameters under taming's keys and layouts (float32 numpy)."""
    out = {}
    for path, var in nnx.to_flat_state(nnx.state(model, nnx.Param)):
        x = np.asarray(jax.device_get(var.get_value()), dtype=np.float32)
        out[taming_key(path)] = np.ascontiguousarray(_to_torch_layout(path, x))
    return out


def vqgan_from_state_dict(
    state_dict: dict, config: VQGANConfig, *, mesh: Mesh | None = None
) -> VQGAN:
    """A taming state dict -> ``VQGAN``, without allocating random weights first.

    ``loss.*`` entries (discriminator, LPIPS) are ignored with a logged count; a
    missing, unexpected or wrong-shaped tensor raises ValueError naming the key.
    With ``mesh`` every parameter is placed by its logical axes (replicated for the
    VQGAN's default rules).
    """
    ignored = [k for k in state_dict if k.startswith(IGNORED_PREFIXES)]
    if ignored:
        logging.info("vqgan: ignoring %d loss.* tensors (discriminator/LPIPS)", len(ignored))
    tensors = {k: v for k, v in state_dict.items() if not k.startswith(IGNORED_PREFIXES)}

    def factory():
        return VQGAN(config, rngs=nnx.Rngs(0))

    graphdef, params, rest = nnx.split(nnx.eval_shape(factory), nnx.Param, ...)
    flat = nnx.to_flat_state(params)
    expected = {taming_key(p): (p, v) for p, v in flat}
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise InputError(
            f"vqgan: the checkpoint does not match the config ({len(missing)} missing, "
            f"{len(unexpected)} unexpected tensors); missing: {missing[:8]}, unexpected: "
            f"{unexpected[:8]}"
        )
    shardings = state_shardings(params, mesh) if mesh is not None else None
    sharding_of = dict(nnx.to_flat_state(shardings)) if shardings is not None else {}
    new = []
    for key, (path, var) in expected.items():
        x = np.asarray(tensors[key])
        want = _torch_shape(path, var.shape)
        if tuple(x.shape) != want:
            raise InputError(
                f"vqgan: tensor {key!r} has shape {tuple(x.shape)}, the config expects {want}"
            )
        x = np.ascontiguousarray(_from_torch_layout(path, x)).astype(var.dtype)
        placed = jax.device_put(x, sharding_of[path].get_value()) if mesh else jnp.asarray(x)
        new.append((path, var.replace(placed)))
    # Non-parameter state (dropout RNG streams, if any) is built for real; jit drops the
    # parameter initialisers it does not return.
    rest = jax.jit(lambda: nnx.state(factory(), nnx.Not(nnx.Param)))() if len(rest) else rest
    return nnx.merge(graphdef, nnx.from_flat_state(new), rest)


# -- files ---------------------------------------------------------------------------


def _torch():
    try:
        # torch is an optional extra, needed for .ckpt files only.
        import torch
    except ImportError as e:  # torch is an optional extra
        raise ImportError(
            "reading or writing a taming .ckpt needs torch (pip install 'liquid_jax[torch]'); "
            "use the .safetensors format instead"
        ) from e
    return torch


def read_state_dict(path: str) -> dict[str, np.ndarray]:
    """Tensors of a ``.ckpt`` (``torch.load(weights_only=True)``) or ``.safetensors``."""
    if path.endswith(".safetensors"):
        return read_safetensors(path)
    torch = _torch()
    # torch.load reads a local file by name, anything else from its bytes.
    source = io.BytesIO(fileio.read_bytes(path)) if fileio.is_url(path) else path
    try:
        obj = torch.load(source, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise InputError(
            f"vqgan: {path} holds objects other than tensors and plain containers and is "
            f"not loaded (weights_only=True): {e}"
        ) from None
    sd = obj.get("state_dict", obj) if isinstance(obj, dict) else None
    if not isinstance(sd, dict):
        raise InputError(f"vqgan: {path} is not a taming checkpoint ({{'state_dict': ...}})")
    return {
        k: v.detach().to(torch.float32).numpy() if v.is_floating_point() else v.numpy()
        for k, v in sd.items()
        if isinstance(v, torch.Tensor)
    }


def _find(directory: str, names: tuple[str, ...], patterns: tuple[str, ...], what: str) -> str:
    for n in names:
        if fileio.isfile(fileio.join(directory, n)):
            return fileio.join(directory, n)
    # As glob does, "*" leaves out hidden files.
    listing = [n for n in fileio.listdir(directory) if not n.startswith(".")]
    for pattern in patterns:
        found = sorted(fnmatch.filter(listing, pattern))
        if len(found) == 1:
            return fileio.join(directory, found[0])
    raise PathNotFoundError(
        f"vqgan: no {what} in {directory} (looked for {', '.join(names + patterns)})"
    )


def resolve_paths(path: str) -> tuple[str, str]:
    """(yaml, weights) for a directory, a yaml or a ``.ckpt``/``.safetensors`` file.

    A directory prefers ``vqgan.safetensors`` (no pickle) over ``vqgan.ckpt``; a yaml or
    weights file looks for its partner with the same stem, then ``vqgan.*`` beside it.
    """
    path = os.fspath(path)
    if fileio.isdir(path):
        cfg = _find(path, (CONFIG_FILE,), ("*.yaml",), "vqgan yaml")
        weights = _find(
            path, (SAFETENSORS_FILE, CKPT_FILE), ("*.safetensors", "*.ckpt"), "vqgan weights"
        )
        return cfg, weights
    if not fileio.isfile(path):
        raise PathNotFoundError(f"vqgan: {path} does not exist")
    names = posixpath if fileio.is_url(path) else os.path
    directory = names.dirname(path) or "."
    stem = names.splitext(names.basename(path))[0]
    if path.endswith((".yaml", ".yml")):
        names = (stem + ".safetensors", stem + ".ckpt", SAFETENSORS_FILE, CKPT_FILE)
        return path, _find(directory, names, ("*.safetensors", "*.ckpt"), "vqgan weights")
    if path.endswith((".ckpt", ".safetensors")):
        return _find(directory, (stem + ".yaml", CONFIG_FILE), ("*.yaml",), "vqgan yaml"), path
    raise InputError(f"vqgan: {path} is neither a directory, a .yaml, a .ckpt nor a .safetensors")


def load_vqgan(path: str, *, mesh: Mesh | None = None, **overrides) -> VQGAN:
    """A taming/Chameleon checkpoint (directory, yaml, ``.ckpt`` or ``.safetensors``)
    -> ``VQGAN``. ``overrides`` replace config fields (e.g. ``dtype="bfloat16"``)."""
    cfg_path, weights_path = resolve_paths(path)
    with fileio.open(cfg_path) as f:
        config = config_from_taming(yaml.safe_load(f) or {}, **overrides)
    logging.info("vqgan: loading %s with %s", weights_path, cfg_path)
    return vqgan_from_state_dict(read_state_dict(weights_path), config, mesh=mesh)


def save_vqgan(
    model: VQGAN, path: str, *, formats: tuple[str, ...] = ("ckpt", "safetensors")
) -> list[str]:
    """Writes ``vqgan.yaml`` and the weights (``vqgan.ckpt`` and/or ``vqgan.safetensors``)
    into the directory ``path`` (local or a URL); returns the files written.

    The ``.ckpt`` is taming's ``{"state_dict": ...}`` and needs torch; pass
    ``formats=("safetensors",)`` without it.
    """
    bad = set(formats) - {"ckpt", "safetensors"}
    if bad or not formats:
        raise ValueError(f"save_vqgan: formats must be 'ckpt' and/or 'safetensors', got {formats}")
    fileio.makedirs(path)
    state_dict = vqgan_to_state_dict(model)
    written = [fileio.join(path, CONFIG_FILE)]
    text = yaml.safe_dump(config_to_taming(model.config), sort_keys=False)

    def write_yaml(tmp):
        with open(tmp, "w") as f:  # a local file: write_through uploads it for a URL
            f.write(text)

    # write_through: a crash never leaves half a checkpoint.
    write_through(written[0], write_yaml)
    if "safetensors" in formats:
        written.append(fileio.join(path, SAFETENSORS_FILE))
        write_through(
            written[-1], lambda tmp: save_file(state_dict, tmp, metadata={"format": "taming"})
        )
    if "ckpt" in formats:
        torch = _torch()
        written.append(fileio.join(path, CKPT_FILE))
        tensors = {k: torch.from_numpy(v.copy()) for k, v in state_dict.items()}
        write_through(written[-1], lambda tmp: torch.save({"state_dict": tensors}, tmp))
    return written
