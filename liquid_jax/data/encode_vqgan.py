"""The VQGAN that ``encode-images`` runs: from a train-vqgan workdir or a taming checkpoint.

    load_vqgan_from_workdir(workdir, model_config)   # the ``model`` of the newest checkpoint
    load_configured_vqgan(config.vqgan, mesh)        # whichever the config names

train-vqgan saves its whole ``VQGANTrainState`` (model, optimizers, discriminator,
codebook tracker) with Orbax under ``WORKDIR/checkpoints/STEP/state``
(``train.checkpoint``); only the ``model`` subtree is read back here.
"""

from __future__ import annotations

import dataclasses
import os

import jax
from absl import logging
from flax import nnx
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from liquid_jax import fileio
from liquid_jax.models.vqgan import VQGAN
from liquid_jax.models.vqgan_config import VQGANConfig

VQGAN_CHECKPOINTS = "checkpoints"  # train-vqgan's Orbax folder (train.checkpoint.CHECKPOINT_DIR)


def vqgan_config(model_config) -> VQGANConfig:
    """A ``VQGANConfig``, or a mapping of its fields (a config's ``model`` section)."""
    if isinstance(model_config, VQGANConfig):
        return model_config
    items = dict(model_config).items()
    return VQGANConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in items})


def _checkpoint_manager(workdir: str):
    import orbax.checkpoint as ocp

    directory = fileio.join(fileio.absolute(workdir), VQGAN_CHECKPOINTS)
    if not fileio.isdir(directory):
        raise FileNotFoundError(f"vqgan: no train-vqgan checkpoints in {directory}")
    return ocp.CheckpointManager(directory, options=ocp.CheckpointManagerOptions(create=False))


def vqgan_checkpoint_step(workdir: str) -> int:
    """The newest complete train-vqgan checkpoint step in ``workdir``."""
    step = _checkpoint_manager(workdir).latest_step()
    if step is None:
        raise FileNotFoundError(f"vqgan: no complete checkpoint in {workdir}/{VQGAN_CHECKPOINTS}")
    return int(step)


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
        raise ValueError(f"vqgan: {path} holds no train-vqgan model (top-level keys {keys})")
    saved, want = _shapes(tree["model"]), _shapes(abstract)
    missing = sorted(set(want) - set(saved))
    unexpected = sorted(set(saved) - set(want))
    wrong = sorted(
        f"{k} {saved[k]} != {want[k]}" for k in set(saved) & set(want) if saved[k] != want[k]
    )
    if missing or unexpected or wrong:
        raise ValueError(
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
    ``step`` defaults to the newest complete checkpoint.
    """
    import orbax.checkpoint as ocp
    from etils import epath

    from liquid_jax.train.checkpoint import restore_subtree

    config = vqgan_config(model_config)
    step = vqgan_checkpoint_step(workdir) if step is None else int(step)
    graphdef, abstract = nnx.split(nnx.eval_shape(lambda: VQGAN(config, rngs=nnx.Rngs(0))))
    sharding = NamedSharding(mesh, P()) if mesh is not None else None
    target = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), abstract
    )
    path = fileio.join(fileio.absolute(workdir), VQGAN_CHECKPOINTS, str(step), "state")
    metadata = ocp.PyTreeCheckpointHandler().metadata(epath.Path(path))
    _check_saved_model(metadata, target, path, config)
    _, state = restore_subtree(workdir, "model", target, step)
    logging.info("vqgan: restored the model of %s (step %d)", workdir, step)
    if mesh is None:
        state = jax.tree.map(jax.numpy.asarray, state)
    return nnx.merge(graphdef, state)


def load_configured_vqgan(vq_cfg, mesh: Mesh | None = None) -> tuple[VQGAN, dict]:
    """``config.vqgan`` -> (model, a JSON description of where it came from)."""
    path, workdir = vq_cfg.get("path", ""), vq_cfg.get("workdir", "")
    if bool(path) == bool(workdir):
        raise ValueError(
            "encode-images: set exactly one of config.vqgan.path (a taming/Chameleon "
            "checkpoint) and config.vqgan.workdir (a train-vqgan run)"
        )
    dtype = vq_cfg.get("dtype", "") or None
    if path:
        from liquid_jax.export.vqgan import load_vqgan

        model = load_vqgan(path, mesh=mesh, **({"dtype": dtype} if dtype else {}))
        where = {"path": os.path.abspath(path)}
    else:
        step = vq_cfg.get("step", -1)
        step = vqgan_checkpoint_step(workdir) if step is None or step < 0 else int(step)
        fields = dict(vq_cfg.model)
        if dtype:
            fields["dtype"] = dtype
        model = load_vqgan_from_workdir(workdir, fields, step=step, mesh=mesh)
        where = {"workdir": fileio.absolute(workdir), "step": step}
    return model, {**where, "config": dataclasses.asdict(model.config)}
