"""VQGAN objectives: reconstruction, perceptual, hinge GAN and the adaptive GAN weight."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def reconstruction_loss(x, x_rec, l1_weight: float, l2_weight: float):
    """Mean pixel loss. x, x_rec: float32[B, H, W, C]."""
    diff = x.astype(jnp.float32) - x_rec.astype(jnp.float32)
    return l1_weight * jnp.mean(jnp.abs(diff)) + l2_weight * jnp.mean(diff**2)


def hinge_d_loss(logits_real, logits_fake):
    return 0.5 * (
        jnp.mean(jax.nn.relu(1.0 - logits_real)) + jnp.mean(jax.nn.relu(1.0 + logits_fake))
    )


def hinge_g_loss(logits_fake):
    return -jnp.mean(logits_fake)


def adaptive_gan_weight(nll_grad_last, g_grad_last, max_weight: float = 1e4):
    """Taming's balance: ||d nll / d W_last|| / ||d g / d W_last|| for the last decoder layer.

    Scaling the GAN gradient this way keeps it the same size as the reconstruction
    gradient where it enters the image, whatever the two losses' scales.
    """
    ratio = jnp.linalg.norm(nll_grad_last) / (jnp.linalg.norm(g_grad_last) + 1e-4)
    return jax.lax.stop_gradient(jnp.clip(ratio, 0.0, max_weight))
