"""Dead-code re-seeding: keeps a small data set from collapsing the VQ codebook.

Each step adds the batch's code counts to a decaying usage estimate; every
``reseed_every`` steps, codes whose usage fell below ``threshold`` times the uniform
share (codes per batch / codebook size) are replaced by encoder outputs drawn at random
from the current batch (as in Jukebox / improved VQGAN recipes), so every code stays
near the data.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx


class CodeUsage(nnx.Variable):
    """Running per-code usage (exponentially decayed counts); not trained."""


class CodebookTracker(nnx.Module):
    def __init__(self, n_embed: int, decay: float = 0.9):
        self.decay = decay
        # Negative = not measured yet: the first batch sets the uniform share, so nothing
        # is re-seeded before usage has been observed for a while.
        self.usage = CodeUsage(jnp.full((n_embed,), -1.0, jnp.float32))

    def update(self, codes: jax.Array) -> None:
        """codes: int32[...] of this step."""
        n_embed = self.usage.shape[0]
        counts = jnp.bincount(codes.reshape(-1), length=n_embed).astype(jnp.float32)
        usage = self.usage[...]
        usage = jnp.where(usage < 0, codes.size / n_embed, usage)
        self.usage[...] = self.decay * usage + (1 - self.decay) * counts

    def reseed(
        self,
        codebook: jax.Array,
        latents: jax.Array,
        key: jax.Array,
        threshold: float,
        active: jax.Array | bool = True,
    ) -> tuple[jax.Array, jax.Array]:
        """Returns (new codebook float[K, D], number of codes re-seeded).

        latents: float[N, D] encoder outputs of the batch (pre-quantisation).
        active: bool[] (traced is fine); when False nothing changes.
        """
        uniform = jnp.mean(self.usage[...])
        dead = (self.usage[...] < threshold * uniform) & active
        picks = jax.random.randint(key, (codebook.shape[0],), 0, latents.shape[0])
        new = jnp.where(dead[:, None], latents[picks].astype(codebook.dtype), codebook)
        # A re-seeded code counts as alive again for the next measurement window.
        self.usage[...] = jnp.where(dead, uniform, self.usage[...])
        return new, jnp.sum(dead)
