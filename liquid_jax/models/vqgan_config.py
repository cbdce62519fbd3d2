"""The VQGAN's sizes: one frozen dataclass, taming's ``ddconfig`` names plus the quantizer's."""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp

from liquid_jax.errors import ConfigError

GROUPS = 32  # GroupNorm groups, fixed by taming's ``Normalize``.


@dataclasses.dataclass(frozen=True)
class VQGANConfig:
    """Every size of the taming ``VQModel`` (encoder, quantizer, decoder).

    Field names follow taming's yaml (``model.params.ddconfig`` plus ``embed_dim`` and
    ``n_embed``) so a config converts field for field. ``attn_resolutions`` are feature
    map sizes counted from ``resolution`` (taming's convention: attention is placed by
    the nominal resolution, whatever size the images actually have).
    """

    ch: int = 128
    ch_mult: tuple[int, ...] = (1, 1, 2, 2, 4)
    num_res_blocks: int = 2
    attn_resolutions: tuple[int, ...] = ()
    z_channels: int = 256
    embed_dim: int = 256
    n_embed: int = 8192
    resolution: int = 512
    in_channels: int = 3
    out_ch: int = 3
    dropout: float = 0.0
    double_z: bool = False
    # Quantizer: taming's VectorQuantizer2 (beta 0.25, legacy loss placement).
    beta: float = 0.25
    legacy: bool = True
    l2_normalize: bool = False  # LlamaGen-style cosine codes; False for taming/Chameleon
    # > 0: encode the image in tiles of encode_tile x encode_tile codes, each tile on its
    # own (no context from the rest of the image), so equal tiles always get equal codes;
    # the decoder still sees the whole grid. 0 is taming's (and Chameleon's) behaviour:
    # the encoder mixes context from the whole image into every code.
    encode_tile: int = 0
    # > 0: decode the codes in tiles of decode_tile x decode_tile codes, each on its own,
    # so equal tiles of codes always give equal pixels (with encode_tile, a code is then
    # exactly a patch of pixels). 0 is taming's: the decoder sees the whole grid.
    decode_tile: int = 0
    # Compute dtype of convolutions and norms; parameters stay float32.
    dtype: str = "float32"

    def __post_init__(self):
        # Lists from yaml/json become tuples so the config stays hashable (jit static).
        object.__setattr__(self, "ch_mult", tuple(int(m) for m in self.ch_mult))
        object.__setattr__(self, "attn_resolutions", tuple(int(r) for r in self.attn_resolutions))
        if not self.ch_mult:
            raise ConfigError("vqgan config: ch_mult must name at least one level")
        if self.double_z:
            raise ConfigError(
                "vqgan config: double_z=True is a KL autoencoder setting; taming's VQModel "
                "(and this VQGAN) needs double_z=False"
            )
        for m in self.ch_mult:
            if (self.ch * m) % GROUPS:
                raise ConfigError(
                    f"vqgan config: ch * ch_mult = {self.ch} * {m} = {self.ch * m} channels "
                    f"is not divisible by the {GROUPS} GroupNorm groups"
                )
        for name in ("num_res_blocks", "z_channels", "embed_dim", "n_embed", "in_channels"):
            if getattr(self, name) < 1:
                raise ConfigError(f"vqgan config: {name}={getattr(self, name)} must be >= 1")
        for name in ("encode_tile", "decode_tile"):
            if getattr(self, name) < 0:
                raise ConfigError(f"vqgan config: {name}={getattr(self, name)} must be >= 0")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"vqgan config: dropout={self.dropout} must be in [0, 1)")
        jnp.dtype(self.dtype)  # fails early on a bad dtype name

    @property
    def downsample_factor(self) -> int:
        """Pixels per code along each side: 2 ** (levels - 1); 16 for Chameleon."""
        return 2 ** (len(self.ch_mult) - 1)

    @property
    def compute_dtype(self):
        return jnp.dtype(self.dtype)

    def grid(self, height: int, width: int) -> tuple[int, int]:
        """The code grid (h, w) of an image of ``height x width`` pixels."""
        f = self.downsample_factor
        return height // f, width // f


def chameleon_vqgan(**overrides) -> VQGANConfig:
    """Chameleon's (and Liquid's) image tokenizer: f16, 8192 codes of 256 dims."""
    base = dict(
        ch=128,
        ch_mult=(1, 1, 2, 2, 4),
        num_res_blocks=2,
        attn_resolutions=(),
        z_channels=256,
        embed_dim=256,
        n_embed=8192,
        resolution=512,
        in_channels=3,
        out_ch=3,
        dropout=0.0,
        double_z=False,
    )
    base.update(overrides)
    return VQGANConfig(**base)


def vqgan_config(model_config) -> VQGANConfig:
    """A ``VQGANConfig``, or a mapping of its fields (a config's ``model`` section)."""
    if isinstance(model_config, VQGANConfig):
        return model_config
    items = dict(model_config).items()
    return VQGANConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in items})
