"""The VQGAN that ``encode-images`` runs: from a train-vqgan workdir or a taming checkpoint.

    load_vqgan_from_workdir(workdir, model_config)   # the ``model`` of the newest checkpoint
    load_configured_vqgan(config.vqgan, mesh)        # whichever the config names

train-vqgan saves its whole ``VQGANTrainState`` (model, optimizers, discriminator,
codebook tracker) with Orbax under ``WORKDIR/checkpoints/STEP/state``; only the
``model`` subtree is read back here (``runs.checkpoints``).
"""

from __future__ import annotations

import dataclasses
import os

import jax
import orbax.checkpoint as ocp
from absl import logging
from etils import epath
from flax import nnx
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from liquid_jax import fileio
from liquid_jax.errors import ConfigError, InputError, PathNotFoundError
from liquid_jax.export.vqgan import load_vqgan
from liquid_jax.models.vqgan import VQGAN
from liquid_jax.models.vqgan_config import VQGANConfig, vqgan_config
from liquid_jax.runs.checkpoints import (
    complete_steps,
    latest_step,
    read_subtree,
    restore_newest,
    state_path,
)
from liquid_jax.runs.layout import checkpoints_dir


def vqgan_checkpoint_step(workdir: str) -> int:
    """The newest complete train-vqgan checkpoint step in ``workdir``."""
    try:
        return latest_step(workdir)
    except FileNotFoundError as e:
        raise PathNotFoundError(f"vqgan: {e} (not a train-vqgan run?)") from None


def _shapes(tree) -> dict[str, tuple]:
    """Leaf path ("encoder.conv_in.kernel") -> shape; Orbax metadata and abstract states
    spell the same path with different key types."""
    out = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        names = [str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))) for k in path]
        out[".".join(n for n in names if n != "value")] = tuple(getattr(leaf, "shape", ()))
    return out


def _check_saved_model(metadata, abstract, path: str, config: VQGANConfig) -> None:
    """Raises ValueError naming the arrays where the checkpoint and the config disagree."""
    tree = getattr(metadata, "tree", metadata)
    if not isinstance(tree, dict) or "model" not in tree:
        keys = sorted(tree) if isinstance(tree, dict) else type(tree).__name__
        raise InputError(f"vqgan: {path} holds no train-vqgan model (top-level keys {keys})")
    saved, want = _shapes(tree["model"]), _shapes(abstract)
    missing = sorted(set(want) - set(saved))
    unexpected = sorted(set(saved) - set(want))
    wrong = sorted(
        f"{k} {saved[k]} != {want[k]}" for k in set(saved) & set(want) if saved[k] != want[k]
    )
    if missing or unexpected or wrong:
        raise InputError(
            f"vqgan: the model in {path} does not match the config (is model_config the one "
            f"train-vqgan ran with?): {len(missing)} missing, {len(unexpected)} unexpected, "
            f"{len(wrong)} wrong-shaped arrays; missing {missing[:5]}, unexpected "
            f"{unexpected[:5]}, saved vs config {wrong[:5]}; config {config}"
        )


def load_vqgan_from_workdir(
    workdir: str, model_config, *, step: int | None = None, mesh: Mesh | None = None
) -> VQGAN:
    """The ``model`` of a train-vqgan checkpoint (``VQGANTrainState``) -> ``VQGAN``.

    ``model_config``: the ``VQGANConfig`` (or the train-vqgan config's ``model`` section)
    the run was trained with. Only the model's arrays are read (Orbax partial restore;
    the optimizer and discriminator states stay on disk), replicated over ``mesh``.
    ``step`` defaults to the newest checkpoint that reads (a damaged newer one is logged
    and skipped).
    """
    return restore_vqgan(workdir, model_config, step=step, mesh=mesh)[1]


def restore_vqgan(
    workdir: str, model_config, *, step: int | None = None, mesh: Mesh | None = None
) -> tuple[int, VQGAN]:
    """``(step, model)``: ``load_vqgan_from_workdir`` with the step it read."""
    config = vqgan_config(model_config)
    steps = complete_steps(workdir) if step is None else [int(step)]
    if not steps:
        vqgan_checkpoint_step(workdir)  # raises, naming the folder
    graphdef, abstract = nnx.split(nnx.eval_shape(lambda: VQGAN(config, rngs=nnx.Rngs(0))))
    sharding = NamedSharding(mesh, P()) if mesh is not None else None
    target = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), abstract
    )

    def read(s: int):
        path = state_path(workdir, s)
        metadata = ocp.PyTreeCheckpointHandler().metadata(epath.Path(path))
        _check_saved_model(metadata, target, path, config)  # a mismatch is raised as is
        return read_subtree(workdir, "model", target, s)

    step, state = restore_newest(checkpoints_dir(workdir), steps, read)
    logging.info("vqgan: restored the model of %s (step %d)", workdir, step)
    if mesh is None:
        state = jax.tree.map(jax.numpy.asarray, state)
    return step, nnx.merge(graphdef, state)


def load_configured_vqgan(vq_cfg, mesh: Mesh | None = None) -> tuple[VQGAN, dict]:
    """``config.vqgan`` -> (model, a JSON description of where it came from)."""
    path, workdir = vq_cfg.get("path", ""), vq_cfg.get("workdir", "")
    if bool(path) == bool(workdir):
        raise ConfigError(
            "encode-images: set exactly one of config.vqgan.path (a taming/Chameleon "
            "checkpoint) and config.vqgan.workdir (a train-vqgan run)"
        )
    dtype = vq_cfg.get("dtype", "") or None
    if path:
        model = load_vqgan(path, mesh=mesh, **({"dtype": dtype} if dtype else {}))
        where = {"path": os.path.abspath(path)}
    else:
        step = vq_cfg.get("step", -1)
        step = None if step is None or step < 0 else int(step)
        fields = dict(vq_cfg.model)
        if dtype:
            fields["dtype"] = dtype
        step, model = restore_vqgan(workdir, fields, step=step, mesh=mesh)
        where = {"workdir": fileio.absolute(workdir), "step": step}
    return model, {**where, "config": dataclasses.asdict(model.config)}
