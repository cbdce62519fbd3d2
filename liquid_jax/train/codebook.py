"""Dead-code re-seeding: keeps a small data set from collapsing the VQ codebook.

Each step adds the batch's code counts to a decaying usage estimate; every
``reseed_every`` steps, codes whose usage fell below ``threshold`` times the uniform
share (codes per batch / codebook size) are replaced by encoder outputs of the current
batch (as in Jukebox / improved VQGAN recipes), so every code stays near the data.

Which outputs: those its codes fit worst, drawn without replacement with weights given by
their quantisation error (Gumbel top-k over log error). Uniform picks would mostly land
on what is already common and well coded (a flat background is most of an image), while
a rare pattern that shares a code with another has a large error and gets a code of its
own.
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
        z = latents.astype(jnp.float32)
        book = codebook.astype(jnp.float32)
        dist = (
            jnp.sum(z**2, axis=1, keepdims=True) - 2 * z @ book.T + jnp.sum(book**2, axis=1)
        )  # float[N, K]
        error = jnp.maximum(jnp.min(dist, axis=1), 0.0)
        gumbel = jax.random.gumbel(key, error.shape)
        order = jnp.argsort(-(jnp.log(error + 1e-12) + gumbel))  # worst fitted first
        rank = jnp.cumsum(dead) - 1  # the i-th dead code takes the i-th pick
        picks = order[jnp.maximum(rank, 0) % latents.shape[0]]
        new = jnp.where(dead[:, None], latents[picks].astype(codebook.dtype), codebook)
        # A re-seeded code counts as alive again for the next measurement window.
        self.usage[...] = jnp.where(dead, uniform, self.usage[...])
        return new, jnp.sum(dead)


def farthest_point_codebook(latents: jax.Array, n_embed: int, key: jax.Array) -> jax.Array:
    """float[N, D] encoder outputs -> float32[n_embed, D]: a data-dependent codebook.

    Greedy farthest-point sampling (k-means++ without the randomness after the first
    pick): each code is the latent farthest from the codes chosen so far, so every
    distinct pattern of a small world gets a code of its own before any is repeated (with
    ``encode_tile`` equal patches give equal latents). A codebook drawn uniformly at
    random starts far from the data, and its few codes that are near it each serve many
    patterns until re-seeding splits them, hundreds of steps later.
    """
    z = latents.astype(jnp.float32)
    first = jax.random.randint(key, (), 0, z.shape[0])

    def body(i, carry):
        picks, min_dist = carry
        pick = jnp.argmax(min_dist)
        dist = jnp.sum((z - z[pick]) ** 2, axis=1)
        return picks.at[i].set(pick), jnp.minimum(min_dist, dist)

    picks = jnp.zeros((n_embed,), jnp.int32).at[0].set(first)
    min_dist = jnp.sum((z - z[first]) ** 2, axis=1)
    picks, _ = jax.lax.fori_loop(1, n_embed, body, (picks, min_dist))
    return z[picks]
