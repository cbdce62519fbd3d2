"""The pure, jitted VQGAN training step: generator, discriminator and codebook upkeep.

``make_vqgan_step`` returns ``step(state, lpips_state, batch, key) -> (state, metrics)``,
a pure function of NNX state compiled with explicit shardings (state replicated, images
split over the batch axes) and the state buffers donated. ``batch`` holds ``images``
float[B, H, W, 3] and, for a tile-local encoder, optionally the batch's distinct tiles
(``tiles`` float[K, p, p, 3], ``tile_index`` int32[B, n, m]; ``vqgan_tiles``).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from liquid_jax.evals.reconstruction import codebook_stats, psnr
from liquid_jax.models.discriminator import PatchDiscriminator
from liquid_jax.parallel.host_batch import batch_sharding
from liquid_jax.train.codebook import CodebookTracker
from liquid_jax.train.vqgan_losses import (
    adaptive_gan_weight,
    hinge_d_loss,
    hinge_g_loss,
    reconstruction_loss,
)


@dataclasses.dataclass(frozen=True)
class VQGANLossConfig:
    l1_weight: float = 1.0
    l2_weight: float = 0.0
    codebook_weight: float = 1.0
    perceptual_weight: float = 0.0
    disc_weight: float = 0.0  # 0 disables the GAN
    disc_start: int = 0
    reseed_every: int = 0  # 0 disables dead-code re-seeding
    reseed_threshold: float = 0.03  # fraction of the uniform share


class VQGANTrainState(nnx.Module):
    """Everything that changes during VQGAN training (and is checkpointed)."""

    def __init__(self, model, tx_g, disc: PatchDiscriminator | None, tx_d, n_embed: int):
        self.model = model
        self.opt_g = nnx.Optimizer(model, tx_g, wrt=nnx.Param)
        self.disc = disc
        self.opt_d = nnx.Optimizer(disc, tx_d, wrt=nnx.Param) if disc is not None else None
        self.tracker = CodebookTracker(n_embed)
        self.step = nnx.Variable(jnp.zeros((), jnp.int32))


def make_optimizer(
    lr: float,
    b1: float = 0.5,
    b2: float = 0.9,
    warmup: int = 0,
    clip: float = 0.0,
    decay_step: int = 0,
    decay_factor: float = 1.0,
) -> optax.GradientTransformation:
    """Adam as taming trains VQGANs (betas 0.5, 0.9), with optional warmup, clipping and
    one step decay: from ``decay_step`` on (0 = never) the rate is ``lr * decay_factor``."""
    # Without warmup or decay the rate stays a float, so the optimizer state holds no
    # schedule count (as in checkpoints written before the decay option).
    schedule = optax.linear_schedule(0.0, lr, warmup) if warmup else lr
    if decay_step > 0 and decay_factor != 1.0:
        before = schedule if warmup else optax.constant_schedule(lr)
        schedule = optax.join_schedules(
            [before, optax.constant_schedule(lr * decay_factor)], [decay_step]
        )
    parts = [optax.clip_by_global_norm(clip)] if clip else []
    return optax.chain(*parts, optax.adam(schedule, b1=b1, b2=b2))


def _last_layer(grads) -> jax.Array:
    """The decoder's output convolution kernel, where the adaptive GAN weight is measured."""
    return grads["decoder"]["conv_out"]["kernel"][...]


def _generator_losses(model, lpips, disc, batch, cfg: VQGANLossConfig, use_gan: bool):
    """Returns ((main loss, gan loss), aux) for one batch."""
    images = batch["images"]
    recon, aux = model(images, batch.get("tiles"), batch.get("tile_index"))
    nll = reconstruction_loss(images, recon, cfg.l1_weight, cfg.l2_weight)
    if lpips is not None and cfg.perceptual_weight > 0:
        nll = nll + cfg.perceptual_weight * jnp.mean(lpips(images, recon))
    q_loss = aux["codebook_loss"] + aux["commitment_loss"]
    g_loss = hinge_g_loss(disc(recon)) if use_gan else jnp.zeros((), jnp.float32)
    return (nll + cfg.codebook_weight * q_loss, g_loss), (recon, aux, nll, q_loss)


def make_vqgan_step(graphdef, lpips_graphdef, cfg: VQGANLossConfig, use_gan: bool):
    """The un-jitted pure step; ``jit_vqgan_step`` compiles it for a mesh."""

    def step(state, lpips_state, batch, key):
        ts: VQGANTrainState = nnx.merge(graphdef, state)
        lpips = nnx.merge(lpips_graphdef, lpips_state) if lpips_graphdef is not None else None
        gdef, params, rest = nnx.split(ts.model, nnx.Param, ...)

        def losses(p):
            model = nnx.merge(gdef, p, rest)
            return _generator_losses(model, lpips, ts.disc, batch, cfg, use_gan)

        (main, g_loss), vjp_fn, (recon, aux, nll, q_loss) = jax.vjp(losses, params, has_aux=True)
        images = batch["images"]
        one, zero = jnp.ones((), jnp.float32), jnp.zeros((), jnp.float32)
        grads = vjp_fn((one, zero))[0]
        metrics = {"loss": main, "nll": nll, "q_loss": q_loss}
        if use_gan:
            g_grads = vjp_fn((zero, one))[0]
            weight = cfg.disc_weight * adaptive_gan_weight(_last_layer(grads), _last_layer(g_grads))
            grads = jax.tree.map(lambda a, b: a + weight * b, grads, g_grads)
            fake = jax.lax.stop_gradient(recon)

            def d_loss(disc):
                return hinge_d_loss(disc(images), disc(fake))

            loss_d, d_grads = nnx.value_and_grad(d_loss)(ts.disc)
            ts.opt_d.update(ts.disc, d_grads)
            metrics.update(g_loss=g_loss, d_loss=loss_d, gan_weight=weight)
        ts.opt_g.update(ts.model, grads)

        codes = aux["codes"]
        ts.tracker.update(codes)
        if cfg.reseed_every:
            latents = aux["latents"].reshape(-1, aux["latents"].shape[-1])
            codebook = ts.model.quantize.embedding
            do = (ts.step[...] + 1) % cfg.reseed_every == 0
            codebook[...], metrics["reseeded"] = ts.tracker.reseed(
                codebook[...], latents, key, cfg.reseed_threshold, active=do
            )
        ts.step[...] = ts.step[...] + 1
        metrics.update(psnr=jnp.mean(psnr(images, recon)))
        metrics.update(codebook_stats(codes, ts.tracker.usage.shape[0]))
        return nnx.state(ts), metrics

    return step


def jit_vqgan_step(
    graphdef, state, lpips_graphdef, lpips_state, cfg, use_gan, mesh: Mesh, tiles: bool = False
):
    """Compiles the step for ``mesh``: state replicated and donated, images batch-sharded;
    with ``tiles`` the batch also carries its distinct tiles (replicated) and their index."""
    replicated = NamedSharding(mesh, P())
    state_sh = jax.tree.map(lambda _: replicated, state)
    lpips_sh = jax.tree.map(lambda _: replicated, lpips_state)
    batch_sh = {"images": batch_sharding(mesh, 4)}
    if tiles:
        batch_sh.update(tiles=replicated, tile_index=batch_sharding(mesh, 3))
    return jax.jit(
        make_vqgan_step(graphdef, lpips_graphdef, cfg, use_gan),
        in_shardings=(state_sh, lpips_sh, batch_sh, replicated),
        out_shardings=(state_sh, replicated),
        donate_argnums=(0,),
    )
