"""``liquid-jax train-vqgan``: train or fine-tune the image tokenizer.

Sections: mesh, data, model + optimizers (created sharded), perceptual network,
checkpoint resume, the compiled steps, the loop (metrics, evaluation grids, checkpoints,
preemption).
"""

from __future__ import annotations

import dataclasses
import functools
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging
from flax import nnx
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from liquid_jax import fileio
from liquid_jax.data.images import to_uint8
from liquid_jax.data.shapes.sample import STYLE_DEFAULTS
from liquid_jax.data.shapes.world import generate_images
from liquid_jax.data.sources.image_batches import host_batch, load_image_folder
from liquid_jax.errors import ConfigError
from liquid_jax.evals.grid import image_grid, save_png
from liquid_jax.evals.reconstruction import codebook_stats, psnr, ssim
from liquid_jax.models.discriminator import PatchDiscriminator
from liquid_jax.models.lpips import load_lpips
from liquid_jax.models.vqgan import VQGAN
from liquid_jax.models.vqgan_config import vqgan_config
from liquid_jax.models.vqgan_tiles import distinct_tiles
from liquid_jax.parallel import MeshConfig, create_sharded, host_local_to_global, make_mesh
from liquid_jax.progress import Progress
from liquid_jax.train.checkpoint import Checkpointer
from liquid_jax.train.codebook import farthest_point_codebook
from liquid_jax.train.metrics import MetricWriter
from liquid_jax.train.preemption import PreemptionGuard
from liquid_jax.train.vqgan_step import (
    VQGANLossConfig,
    VQGANTrainState,
    jit_vqgan_step,
    make_optimizer,
)


def load_images(data_cfg) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) uint8[N, H, W, 3] from ``config.data``."""
    source = data_cfg.source
    if source == "shapes":
        size = data_cfg.image_size
        style = {k: data_cfg[k] for k in STYLE_DEFAULTS if k in data_cfg}
        train = generate_images(data_cfg.num_train, size, seed=data_cfg.seed, split="train",
                                **style)  # fmt: skip
        val = generate_images(data_cfg.num_val, size, seed=data_cfg.seed, split="validation",
                              **style)  # fmt: skip
        return train, val
    if source == "folder":
        images = load_image_folder(data_cfg.path, data_cfg.image_size)
        n_val = min(data_cfg.num_val, len(images) // 10)
        return images[n_val:], images[:n_val]
    if source == "npz":
        with np.load(data_cfg.path) as f:
            return f["train"], f["validation"]
    raise ConfigError(f"data.source {source!r}: expected 'shapes', 'folder' or 'npz'")


def _load_perceptual(loss_cfg):
    path = loss_cfg.get("perceptual_weights", "")
    if loss_cfg.perceptual_weight <= 0:
        return None
    if not path or not os.path.exists(path):
        logging.warning(
            "perceptual loss skipped: weights file %r not found (set "
            "config.loss.perceptual_weights to a VGG16/LPIPS .safetensors or .pth)",
            path,
        )
        return None
    return load_lpips(path)


EVAL_BATCH = 32  # images per compiled evaluation batch (the last one padded)


@functools.lru_cache(maxsize=4)
def _recon_fn(graphdef):
    """Jitted ``(state, images) -> (reconstructions, codes, psnr, ssim)``: one compile per
    model (the metrics computed op by op compiled each op on first use: seconds)."""

    @jax.jit
    def recon(state, x):
        out, aux = nnx.merge(graphdef, state)(x)
        out = jnp.clip(out, -1.0, 1.0)
        return out, aux["codes"], psnr(x, out), ssim(x, out)

    return recon


def evaluate(model, images: np.ndarray, n_embed: int) -> tuple[dict[str, float], tuple]:
    """Reconstruction metrics over ``images`` (uint8[N, H, W, 3]), and the first batch's
    (inputs, reconstructions) in [-1, 1]."""
    graphdef, state = nnx.split(model)
    recon = _recon_fn(graphdef)
    ps, ss, codes, first = [], [], [], None
    for i in range(0, len(images), EVAL_BATCH):
        x = np.asarray(images[i : i + EVAL_BATCH], np.float32) / 127.5 - 1.0
        n = len(x)
        pad = np.zeros((EVAL_BATCH - n, *x.shape[1:]), np.float32)
        out, c, p, s = recon(state, np.concatenate([x, pad]))
        ps.append(p[:n])
        ss.append(s[:n])
        codes.append(c[:n].reshape(-1))
        first = (x, out[:n]) if first is None else first
    stats = codebook_stats(jnp.concatenate(codes), n_embed)
    metrics = {
        "psnr": float(jnp.mean(jnp.concatenate(ps))),
        "ssim": float(jnp.mean(jnp.concatenate(ss))),
        **{k: float(v) for k, v in stats.items()},
    }
    return metrics, first


def _data_codebook(graphdef, state, images: np.ndarray, batch_size: int, seed: int):
    """``state`` with its codebook set by ``farthest_point_codebook`` over the encoder
    outputs of up to 512 train images (taken in order; the data are already shuffled)."""
    t = time.perf_counter()
    train_state = nnx.merge(graphdef, state)
    model, n_embed = train_state.model, train_state.model.config.n_embed
    encode = nnx.jit(lambda m, x: m.encode_latents(x, deterministic=True))
    latents = []
    for i in range(0, min(len(images), 512), batch_size):
        x = jnp.asarray(images[i : i + batch_size], jnp.float32) / 127.5 - 1.0
        z = encode(model, x)
        latents.append(z.reshape(-1, z.shape[-1]))
    book = farthest_point_codebook(jnp.concatenate(latents), n_embed, jax.random.key(seed))
    embedding = model.quantize.embedding
    embedding[...] = jax.device_put(book.astype(embedding.dtype), embedding[...].sharding)
    logging.info("vqgan: codebook drawn from %d encoder outputs (farthest points) in %.1fs",
                 sum(len(z) for z in latents), time.perf_counter() - t)  # fmt: skip
    return nnx.split(train_state)[1]


def train_vqgan(config, workdir: str) -> dict[str, float]:
    """Runs (or resumes) VQGAN training; returns the final validation metrics."""
    fileio.makedirs(workdir)
    # --- mesh
    mesh = make_mesh(MeshConfig.from_config(config.get("mesh", {})))
    # --- data
    train_images, val_images = load_images(config.data)
    logging.info(
        "vqgan data: %d train / %d validation images of %s",
        len(train_images),
        len(val_images),
        train_images.shape[1:],
    )
    # --- model and optimizers, created replicated on the mesh
    vq_cfg = vqgan_config(config.model)
    loss_cfg = VQGANLossConfig(
        **{
            k: v
            for k, v in config.loss.items()
            if k in {f.name for f in dataclasses.fields(VQGANLossConfig)}
        }
    )
    use_gan = loss_cfg.disc_weight > 0
    opt = config.optim
    decay_at = float(opt.get("decay_at", 0.0))
    if not 0.0 <= decay_at < 1.0:
        raise ConfigError(f"optim.decay_at={decay_at}: a fraction of total_steps in [0, 1)")
    decay = dict(decay_step=int(config.total_steps * decay_at),
                 decay_factor=float(opt.get("decay_factor", 1.0)))  # fmt: skip

    def factory():
        rngs = nnx.Rngs(config.seed)
        disc = (
            PatchDiscriminator(3, config.loss.disc_ndf, config.loss.disc_layers, rngs=rngs)
            if use_gan
            else None
        )
        tx_g = make_optimizer(opt.lr, opt.b1, opt.b2, opt.warmup_steps, opt.clip, **decay)
        tx_d = make_optimizer(opt.lr, opt.b1, opt.b2, opt.warmup_steps, opt.clip, **decay)
        return VQGANTrainState(VQGAN(vq_cfg, rngs=rngs), tx_g, disc, tx_d, vq_cfg.n_embed)

    train_state = create_sharded(factory, mesh)
    graphdef, state = nnx.split(train_state)
    lpips = _load_perceptual(config.loss)
    lpips_graphdef, lpips_state = nnx.split(lpips) if lpips is not None else (None, {})
    # --- resume, or start from a codebook drawn from the data
    ckpt = Checkpointer(workdir, keep=config.get("keep_checkpoints", 3))
    start = 0
    if ckpt.latest_step() is not None:
        start, state, _, _ = ckpt.restore(state)
        logging.info("vqgan: resuming at step %d", start)
    elif config.loss.get("codebook_init", "uniform") == "data":
        state = _data_codebook(graphdef, state, train_images, config.batch_size, config.seed)
    elif config.loss.get("codebook_init", "uniform") != "uniform":
        raise ConfigError(f"loss.codebook_init={config.loss.codebook_init!r}: 'uniform' or 'data'")
    writer = MetricWriter(workdir, resume_step=start)
    # --- compiled steps, each on first use: with the GAN (from disc_start on) or not, and
    # with the batch's distinct tiles or not. A tile-local encoder encodes each distinct
    # tile once (exact: a tile's latents depend on its pixels alone); a batch with more
    # than a quarter of its tiles distinct takes the plain step. One process only: the
    # distinct tiles are found per host.
    compiled = {}

    def step_fn(gan_on: bool, tiles: bool):
        if (gan_on, tiles) not in compiled:
            compiled[gan_on, tiles] = jit_vqgan_step(
                graphdef, state, lpips_graphdef, lpips_state, loss_cfg, gan_on, mesh, tiles
            )
        return compiled[gan_on, tiles]

    tile_px = vq_cfg.encode_tile * vq_cfg.downsample_factor if jax.process_count() == 1 else 0
    capacity = config.batch_size * train_images[0, ..., 0].size // tile_px**2 // 4 if tile_px else 0
    replicated = NamedSharding(mesh, P())
    tiled_steps = 0
    # --- loop
    total = config.total_steps
    progress = Progress(total, start)
    base_key = jax.random.key(config.seed + 1)
    final = {}
    with PreemptionGuard() as preempt:
        for step in range(start, total):
            local = host_batch(train_images, config.batch_size, config.seed, step)
            batch = {"images": host_local_to_global(local, mesh)}
            found = distinct_tiles(local, tile_px, capacity) if tile_px else None
            if found is not None:
                batch.update(tiles=jax.device_put(found[0], replicated),
                             tile_index=host_local_to_global(found[1], mesh))  # fmt: skip
                tiled_steps += 1
            gan_on = use_gan and step >= loss_cfg.disc_start
            t0 = time.perf_counter()
            state, metrics = step_fn(gan_on, found is not None)(
                state, lpips_state, batch, jax.random.fold_in(base_key, step)
            )
            done = step + 1
            last = done == total or preempt.requested
            if done % config.log_every_steps == 0 or last:
                values = writer.write_scalars(
                    done, {**metrics, "step_time_s": time.perf_counter() - t0}
                )
                progress.update(done, f"loss {values['loss']:.4f} psnr {values['psnr']:.2f}")
            if done % config.eval_every_steps == 0 or last:
                model = nnx.merge(graphdef, state).model
                final, (x, out) = evaluate(model, val_images, vq_cfg.n_embed)
                writer.write_scalars(done, {f"val_{k}": v for k, v in final.items()})
                grid = image_grid(to_uint8(np.concatenate([x[:8], out[:8]])), cols=8)
                png = fileio.join(workdir, "samples", f"recon_{done:06d}.png")
                with fileio.local_file(png) as local:
                    save_png(grid, local, 4)
                writer.write_images(done, {"reconstruction": grid})
                logging.info("vqgan eval @%d: %s", done, final)
            if done % config.checkpoint_every_steps == 0 or last:
                ckpt.save(done, state, data_state={"step": done}, force=True)
            if preempt.requested:
                break
    ckpt.close()
    writer.close()
    if tile_px:
        logging.info("vqgan: %d of %d steps encoded only their batch's distinct tiles",
                     tiled_steps, total - start)  # fmt: skip
    return final
