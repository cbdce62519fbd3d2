"""Dead-code re-seeding: keeps a small data set from collapsing the VQ codebook.

Each step adds the batch's code counts to a decaying usage estimate; every
``reseed_every`` steps, codes whose usage fell below ``threshold`` are replaced by
encoder outputs drawn at random from the current batch (as in Jukebox / improved VQGAN
recipes), so every code stays near the data.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx


class CodeUsage(nnx.Variable):
    """Running per-code usage (exponentially decayed counts); not trained."""


class CodebookTracker(nnx.Module):
    def __init__(self, n_embed: int, decay: float = 0.99):
        self.decay = decay
        # Start everything "alive" so nothing is re-seeded before usage is measured.
        self.usage = CodeUsage(jnp.ones((n_embed,), jnp.float32))

    def update(self, codes: jax.Array) -> None:
        """codes: int32[...] of this step."""
        counts = jnp.bincount(codes.reshape(-1), length=self.usage.shape[0])
        self.usage[...] = self.decay * self.usage[...] + (1 - self.decay) * counts

    def reseed(
        self, codebook: jax.Array, latents: jax.Array, key: jax.Array, threshold: float
    ) -> tuple[jax.Array, jax.Array]:
        """Returns (new codebook float[K, D], number of codes re-seeded).

        latents: float[N, D] encoder outputs of the batch (pre-quantisation).
        """
        dead = self.usage[...] < threshold
        picks = jax.random.randint(key, (codebook.shape[0],), 0, latents.shape[0])
        new = jnp.where(dead[:, None], latents[picks].astype(codebook.dtype), codebook)
        # A re-seeded code counts as alive again for the next measurement window.
        self.usage[...] = jnp.where(dead, 1.0, self.usage[...])
        return new, jnp.sum(dead)
