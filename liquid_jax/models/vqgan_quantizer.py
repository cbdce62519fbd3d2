"""Taming's ``VectorQuantizer2``: nearest code by L2 distance, straight-through gradients.

Losses, with ``sg`` = stop_gradient and ``z_q`` the chosen codes:

- commitment term ``mean((sg(z_q) - z)^2)`` (pulls the encoder towards its codes),
- codebook term ``mean((z_q - sg(z))^2)`` (pulls the codes towards the encoder).

Taming's quantizer loss is ``commitment + beta * codebook`` with ``legacy=True`` (the
default, and what Chameleon's VQGAN was trained with: the "bug" that puts beta on the
codebook term) and ``beta * commitment + codebook`` with ``legacy=False``. The aux
entries returned here already carry beta, so ``codebook_loss + commitment_loss`` is
taming's loss either way.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

CODEBOOK_AXES = ("codebook", None)


def _l2_normalize(x: jax.Array, eps: float = 1e-12) -> jax.Array:
    # As torch.nn.functional.normalize: x / max(||x||, eps).
    return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), eps)


class VectorQuantizer(nnx.Module):
    """Codebook ``embedding: float32[n_embed, embed_dim]`` (taming: ``embedding.weight``)."""

    def __init__(
        self,
        n_embed: int,
        embed_dim: int,
        *,
        beta: float = 0.25,
        legacy: bool = True,
        l2_normalize: bool = False,
        rngs: nnx.Rngs,
    ):
        self.n_embed, self.embed_dim = n_embed, embed_dim
        self.beta, self.legacy, self.l2_normalize = beta, legacy, l2_normalize
        # Taming's init: uniform(-1/n_embed, 1/n_embed).
        bound = 1.0 / n_embed
        init = jax.random.uniform(rngs.params(), (n_embed, embed_dim), jnp.float32, -bound, bound)
        self.embedding = nnx.Param(init, out_sharding=CODEBOOK_AXES)

    def codebook(self) -> jax.Array:
        """float32[n_embed, embed_dim], l2-normalised rows when ``l2_normalize``."""
        e = self.embedding[...].astype(jnp.float32)
        return _l2_normalize(e) if self.l2_normalize else e

    def lookup(self, codes: jax.Array) -> jax.Array:
        """codes: int32[...] -> float32[..., embed_dim].

        Codes outside ``[0, n_embed)`` come back as NaN rather than as a clamped
        neighbour; callers with concrete codes check the range first (``VQGAN.decode``).
        """
        return jnp.take(self.codebook(), codes, axis=0, mode="fill", fill_value=jnp.nan)

    def __call__(self, z: jax.Array) -> tuple[jax.Array, jax.Array, dict[str, jax.Array]]:
        """Quantizes ``z: float[B, h, w, embed_dim]``.

        Returns ``(z_q float32[B, h, w, embed_dim] with straight-through gradients,
        codes int32[B, h, w], losses)`` where ``losses`` has ``codebook_loss``,
        ``commitment_loss`` (beta already applied, see the module docstring) and
        ``quantizer_loss`` (their sum).
        """
        z = z.astype(jnp.float32)
        if self.l2_normalize:
            z = _l2_normalize(z)
        e = self.codebook()
        # ||z - e||^2 = ||z||^2 + ||e||^2 - 2 z.e, as taming computes it.
        dist = (
            jnp.sum(z**2, axis=-1, keepdims=True)
            + jnp.sum(e**2, axis=-1)
            - 2.0 * jnp.einsum("bhwd,nd->bhwn", z, e)
        )
        codes = jnp.argmin(dist, axis=-1).astype(jnp.int32)
        z_q = jnp.take(e, codes, axis=0)

        commitment = jnp.mean((jax.lax.stop_gradient(z_q) - z) ** 2)
        codebook = jnp.mean((z_q - jax.lax.stop_gradient(z)) ** 2)
        if self.legacy:
            codebook = self.beta * codebook
        else:
            commitment = self.beta * commitment
        losses = {
            "codebook_loss": codebook,
            "commitment_loss": commitment,
            "quantizer_loss": codebook + commitment,
        }
        z_q = z + jax.lax.stop_gradient(z_q - z)  # straight-through estimator
        return z_q, codes, losses
