"""The image tokenizer: taming's ``VQModel`` (Chameleon's / Liquid's VQGAN) in Flax NNX.

``encode`` maps images ``float[B, H, W, 3]`` in [-1, 1] to codes ``int32[B, H/f, W/f]``
in raster order; ``decode`` maps codes back to images. ``__call__`` is the training
forward pass (reconstruction plus quantizer losses). Attribute names are taming's
(``encoder``, ``quant_conv``, ``quantize``, ``post_quant_conv``, ``decoder``), so
``liquid_jax.export.vqgan`` converts checkpoints with a table of leaf renames.

These methods are traceable (use them inside ``jax.jit``/``nnx.jit``); the batched,
sharded entry points are in ``vqgan_apply``.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from liquid_jax.models.vqgan_blocks import conv
from liquid_jax.models.vqgan_coders import Decoder, Encoder
from liquid_jax.models.vqgan_config import VQGANConfig
from liquid_jax.models.vqgan_quantizer import VectorQuantizer
from liquid_jax.models.vqgan_tiles import from_tiles, to_tiles


def check_image_shape(shape, config: VQGANConfig) -> None:
    """Raises ValueError unless ``shape`` is ``[B, H, W, in_channels]`` with H, W % f == 0."""
    f = config.downsample_factor
    shape = tuple(shape)
    if len(shape) != 4 or shape[-1] != config.in_channels:
        raise ValueError(
            f"vqgan: images must be [B, H, W, {config.in_channels}] (NHWC), got shape {shape}"
        )
    _, h, w, _ = shape
    if h < f or w < f or h % f or w % f:
        raise ValueError(
            f"vqgan: image height and width must be positive multiples of the downsample "
            f"factor {f}, got images of shape {shape} (H={h}, W={w}); resize or crop first "
            f"(liquid_jax.data.images.resize_center_crop)"
        )


def check_codes(codes, config: VQGANConfig) -> None:
    """Raises ValueError for a bad code grid; checks the range when ``codes`` is concrete."""
    if codes.ndim != 3:
        raise ValueError(f"vqgan: codes must be int[B, h, w], got shape {tuple(codes.shape)}")
    if not jnp.issubdtype(codes.dtype, jnp.integer):
        raise ValueError(f"vqgan: codes must be integers, got dtype {codes.dtype}")
    if isinstance(codes, jax.core.Tracer) or codes.size == 0:
        return
    values = np.asarray(codes)
    lo, hi = int(values.min()), int(values.max())
    if lo < 0 or hi >= config.n_embed:
        raise ValueError(
            f"vqgan: codes must lie in [0, {config.n_embed}) (the codebook size n_embed), "
            f"got values in [{lo}, {hi}]"
        )


class VQGAN(nnx.Module):
    """Encoder -> quant_conv -> quantize -> post_quant_conv -> decoder."""

    def __init__(self, config: VQGANConfig, *, rngs: nnx.Rngs):
        self.config = config
        dt = config.compute_dtype
        self.encoder = Encoder(config, rngs=rngs)
        self.quant_conv = conv(config.z_channels, config.embed_dim, 1, rngs=rngs, dtype=dt)
        self.quantize = VectorQuantizer(
            config.n_embed,
            config.embed_dim,
            beta=config.beta,
            legacy=config.legacy,
            l2_normalize=config.l2_normalize,
            rngs=rngs,
        )
        self.post_quant_conv = conv(config.embed_dim, config.z_channels, 1, rngs=rngs, dtype=dt)
        self.decoder = Decoder(config, rngs=rngs)

    @property
    def downsample_factor(self) -> int:
        return self.config.downsample_factor

    # -- encoding -------------------------------------------------------------------

    def encode_latents(self, images: jax.Array, *, deterministic: bool | None = None):
        """images: float[B, H, W, 3] in [-1, 1] -> pre-quantization latents
        float32[B, H/f, W/f, embed_dim] (encoder then ``quant_conv``)."""
        check_image_shape(images.shape, self.config)
        x = images.astype(self.config.compute_dtype)
        t = self.config.encode_tile
        if not t:
            return self.quant_conv(self.encoder(x, deterministic=deterministic)).astype(jnp.float32)
        # [B, H, W, C] -> [B*n*m, p, p, C] with p = t*f pixels: each tile its own image.
        p = t * self.config.downsample_factor
        b, height, width, c = x.shape
        n, m = height // p, width // p
        if n * p != height or m * p != width:
            raise ValueError(f"vqgan: encode_tile={t} needs images whose sides are multiples of "
                             f"{p} pixels, got {height}x{width}")  # fmt: skip
        tiles = to_tiles(x, p)
        z = self.quant_conv(self.encoder(tiles, deterministic=deterministic)).astype(jnp.float32)
        return from_tiles(z, b, n, m)

    def encode(self, images: jax.Array) -> jax.Array:
        """images: float[B, H, W, 3] in [-1, 1] -> codes int32[B, H/f, W/f] (raster order)."""
        chex.assert_type(images, float, custom_message="VQGAN.encode: images must be float")
        _, codes, _ = self.quantize(self.encode_latents(images, deterministic=True))
        b, h, w, _ = images.shape
        f = self.downsample_factor
        chex.assert_shape(codes, (b, h // f, w // f), custom_message="VQGAN.encode: codes")
        chex.assert_type(codes, jnp.int32, custom_message="VQGAN.encode: codes")
        return codes

    # -- decoding -------------------------------------------------------------------

    def embed_codes(self, codes: jax.Array) -> jax.Array:
        """codes: int[B, h, w] -> quantized latents float32[B, h, w, embed_dim]."""
        check_codes(codes, self.config)
        return self.quantize.lookup(codes.astype(jnp.int32))

    def decode_latents(self, z_q: jax.Array, *, deterministic: bool | None = None):
        """Quantized latents float[B, h, w, embed_dim] -> images float32[B, h*f, w*f, 3]."""
        h = self.post_quant_conv(z_q.astype(self.config.compute_dtype))
        t = self.config.decode_tile
        if not t:
            return self.decoder(h, deterministic=deterministic).astype(jnp.float32)
        b, h_codes, w_codes, _ = h.shape
        n, m = h_codes // t, w_codes // t
        if n * t != h_codes or m * t != w_codes:
            raise ValueError(f"vqgan: decode_tile={t} needs code grids whose sides are "
                             f"multiples of {t}, got {h_codes}x{w_codes}")  # fmt: skip
        pixels = self.decoder(to_tiles(h, t), deterministic=deterministic)
        return from_tiles(pixels.astype(jnp.float32), b, n, m)

    def decode(self, codes: jax.Array) -> jax.Array:
        """codes: int[B, h, w] in [0, n_embed) -> images float32[B, h*f, w*f, 3], about [-1, 1].

        Concrete codes outside the codebook raise ValueError; under ``jit`` they cannot
        be checked and decode to NaN.
        """
        images = self.decode_latents(self.embed_codes(codes), deterministic=True)
        b, h, w = codes.shape
        f, c = self.downsample_factor, self.config.out_ch
        chex.assert_shape(images, (b, h * f, w * f, c), custom_message="VQGAN.decode: images")
        chex.assert_type(images, jnp.float32, custom_message="VQGAN.decode: images")
        return images

    # -- training -------------------------------------------------------------------

    def __call__(
        self, images: jax.Array, tiles: jax.Array | None = None, index: jax.Array | None = None
    ) -> tuple[jax.Array, dict[str, jax.Array]]:
        """Training forward pass with straight-through quantization.

        images: float[B, H, W, 3] in [-1, 1]. ``tiles`` float[K, p, p, 3] and ``index``
        int32[B, n, m] (optional; ``vqgan_tiles.distinct_tiles`` of ``images``, p =
        encode_tile * f pixels): the same result, each distinct tile encoded once (and
        decoded once when ``decode_tile`` equals ``encode_tile``). Returns
        ``(reconstruction float32[B, H, W, 3], aux)`` with ``aux``: ``codebook_loss``,
        ``commitment_loss`` (beta applied as taming does; their sum is taming's quantizer
        loss), ``quantizer_loss``, ``codes`` int32[B, h, w] and ``latents``
        float32[B, h, w, embed_dim] (pre-quantization). Dropout follows the module's
        train/eval mode (``model.train()``/``model.eval()``).
        """
        if tiles is None:
            latents = self.encode_latents(images)
            z_q, codes, losses = self.quantize(latents)
            recon = self.decode_latents(z_q)
            return recon, {**losses, "codes": codes, "latents": latents}
        cfg, dt = self.config, self.config.compute_dtype
        if not cfg.encode_tile:
            raise ValueError("vqgan: distinct tiles need a tile-local encoder (encode_tile > 0)")
        # Each distinct tile encoded once: latents float32[K, t, t, embed_dim], then
        # scattered to the grid (the scatter's gradient sums over a tile's copies).
        distinct = self.quant_conv(self.encoder(tiles.astype(dt))).astype(jnp.float32)
        b, n, m = index.shape
        latents = from_tiles(distinct[index.reshape(-1)], b, n, m)
        z_q, codes, losses = self.quantize(latents)
        if cfg.decode_tile != cfg.encode_tile:
            recon = self.decode_latents(z_q)
        else:  # a tile-local decoder on the same tiles: each distinct tile decoded once
            pixels = self.decoder(self.post_quant_conv(self.quantize(distinct)[0].astype(dt)))
            recon = from_tiles(pixels.astype(jnp.float32)[index.reshape(-1)], b, n, m)
        return recon, {**losses, "codes": codes, "latents": latents}
