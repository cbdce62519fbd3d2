"""Taming's VQGAN encoder and decoder (``taming.modules.diffusionmodules.model``), NHWC.

Module paths mirror taming's state_dict: ``down[i].block[j]``, ``down[i].attn[j]``,
``down[i].downsample``, ``mid.block_1``, ``up[i].upsample``, ... The decoder's ``up``
list is indexed by level like taming's (``up[0]`` is the full-resolution level) and run
from the last level to the first.
"""

from __future__ import annotations

import jax
from flax import nnx

from liquid_jax.models.vqgan_blocks import (
    AttnBlock,
    Downsample,
    MidBlock,
    ResnetBlock,
    Upsample,
    conv,
    norm,
)
from liquid_jax.models.vqgan_config import VQGANConfig


class Level(nnx.Module):
    """One resolution level: resnet blocks, optional attention after each, a resampler."""

    def __init__(self, blocks: list, attns: list, resample: nnx.Module | None, name: str):
        self.block = nnx.List(blocks)
        self.attn = nnx.List(attns)
        if resample is not None:
            setattr(self, name, resample)
        self.resample_name = name if resample is not None else None

    def __call__(self, x: jax.Array, *, deterministic: bool | None = None) -> jax.Array:
        for j, block in enumerate(self.block):
            x = block(x, deterministic=deterministic)
            if len(self.attn):
                x = self.attn[j](x)
        if self.resample_name is not None:
            x = getattr(self, self.resample_name)(x)
        return x


class Encoder(nnx.Module):
    """images float[B, H, W, in_channels] -> latents float[B, H/f, W/f, z_channels]."""

    def __init__(self, cfg: VQGANConfig, *, rngs: nnx.Rngs):
        dt = cfg.compute_dtype
        kw = dict(dropout=cfg.dropout, rngs=rngs, dtype=dt)
        self.conv_in = conv(cfg.in_channels, cfg.ch, 3, rngs=rngs, dtype=dt)
        in_mult = (1, *cfg.ch_mult)
        res, levels = cfg.resolution, []
        block_in = cfg.ch
        for i, mult in enumerate(cfg.ch_mult):
            block_in, block_out = cfg.ch * in_mult[i], cfg.ch * mult
            blocks, attns = [], []
            for _ in range(cfg.num_res_blocks):
                blocks.append(ResnetBlock(block_in, block_out, **kw))
                block_in = block_out
                if res in cfg.attn_resolutions:
                    attns.append(AttnBlock(block_in, rngs=rngs, dtype=dt))
            last = i == len(cfg.ch_mult) - 1
            down = None if last else Downsample(block_in, rngs=rngs, dtype=dt)
            levels.append(Level(blocks, attns, down, "downsample"))
            res = res if last else res // 2
        self.down = nnx.List(levels)
        self.mid = MidBlock(block_in, **kw)
        self.norm_out = norm(block_in, rngs=rngs, dtype=dt)
        self.conv_out = conv(block_in, cfg.z_channels, 3, rngs=rngs, dtype=dt)

    def __call__(self, x: jax.Array, *, deterministic: bool | None = None) -> jax.Array:
        h = self.conv_in(x)
        for level in self.down:
            h = level(h, deterministic=deterministic)
        h = self.mid(h, deterministic=deterministic)
        return self.conv_out(nnx.swish(self.norm_out(h)))


class Decoder(nnx.Module):
    """latents float[B, h, w, z_channels] -> images float[B, h*f, w*f, out_ch]."""

    def __init__(self, cfg: VQGANConfig, *, rngs: nnx.Rngs):
        dt = cfg.compute_dtype
        kw = dict(dropout=cfg.dropout, rngs=rngs, dtype=dt)
        n = len(cfg.ch_mult)
        block_in = cfg.ch * cfg.ch_mult[-1]
        res = cfg.resolution // 2 ** (n - 1)
        self.conv_in = conv(cfg.z_channels, block_in, 3, rngs=rngs, dtype=dt)
        self.mid = MidBlock(block_in, **kw)
        levels: list = [None] * n
        for i in reversed(range(n)):
            block_out = cfg.ch * cfg.ch_mult[i]
            blocks, attns = [], []
            # The decoder has one more resnet block per level than the encoder.
            for _ in range(cfg.num_res_blocks + 1):
                blocks.append(ResnetBlock(block_in, block_out, **kw))
                block_in = block_out
                if res in cfg.attn_resolutions:
                    attns.append(AttnBlock(block_in, rngs=rngs, dtype=dt))
            up = Upsample(block_in, rngs=rngs, dtype=dt) if i != 0 else None
            levels[i] = Level(blocks, attns, up, "upsample")
            res = res * 2 if i != 0 else res
        self.up = nnx.List(levels)
        self.norm_out = norm(block_in, rngs=rngs, dtype=dt)
        self.conv_out = conv(block_in, cfg.out_ch, 3, rngs=rngs, dtype=dt)

    def __call__(self, z: jax.Array, *, deterministic: bool | None = None) -> jax.Array:
        h = self.mid(self.conv_in(z), deterministic=deterministic)
        for level in reversed(self.up):
            h = level(h, deterministic=deterministic)
        return self.conv_out(nnx.swish(self.norm_out(h)))
