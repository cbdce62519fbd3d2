"""The VQGAN as PyTorch peers see it: diffusers ``VQModel`` and transformers ``ChameleonVQVAE``.

Which peer matches taming's VQGAN (checked on random weights in the tests):

- ``transformers.ChameleonVQVAE`` holds encoder, ``quant_conv``, quantizer and
  ``post_quant_conv`` under taming's own key names (no decoder): the encode reference.
- ``diffusers.VQModel`` has encoder and decoder of the same structure with renamed keys
  (``up_blocks`` in the reverse order of taming's ``up`` levels; attention projections
  are ``Linear`` where taming has 1x1 convs): the decode reference.
- ``transformers.JanusVQVAE`` does not match: its ``decode`` l2-normalises the codebook,
  and its decoder agrees with taming's only when attention sits at the lowest level.

torch, diffusers and transformers are optional extras, imported inside the functions.
"""

from __future__ import annotations

import re

import numpy as np
from flax import nnx

from liquid_jax.errors import InputError
from liquid_jax.export.vqgan import _torch_shape, taming_key
from liquid_jax.models.vqgan import VQGAN
from liquid_jax.models.vqgan_config import VQGANConfig

_ATTN = {"norm": "group_norm", "q": "to_q", "k": "to_k", "v": "to_v", "proj_out": "to_out.0"}


def taming_shapes(config: VQGANConfig) -> dict[str, tuple[int, ...]]:
    """Every taming state_dict key of ``config`` with its torch shape (nothing allocated)."""
    abstract = nnx.eval_shape(lambda: VQGAN(config, rngs=nnx.Rngs(0)))
    flat = nnx.to_flat_state(nnx.state(abstract, nnx.Param))
    return {taming_key(p): _torch_shape(p, v.shape) for p, v in flat}


def _sub_module(rest: str) -> str:
    """Resnet / attention leaf names, taming -> diffusers."""
    rest = rest.replace("nin_shortcut.", "conv_shortcut.")
    head, _, tail = rest.partition(".")
    return f"{_ATTN[head]}.{tail}" if head in _ATTN else rest


def diffusers_key(key: str, config: VQGANConfig) -> str:
    """A taming key -> the diffusers ``VQModel`` key of the same tensor."""
    n = len(config.ch_mult)
    m = re.fullmatch(r"(encoder|decoder)\.(down|up)\.(\d+)\.(block|attn)\.(\d+)\.(.+)", key)
    if m:
        side, _, i, kind, j, rest = m.groups()
        level = int(i) if side == "encoder" else n - 1 - int(i)
        blocks = "down_blocks" if side == "encoder" else "up_blocks"
        group = "resnets" if kind == "block" else "attentions"
        return f"{side}.{blocks}.{level}.{group}.{j}.{_sub_module(rest)}"
    m = re.fullmatch(r"(encoder|decoder)\.(down|up)\.(\d+)\.(downsample|upsample)\.(.+)", key)
    if m:
        side, _, i, kind, rest = m.groups()
        level = int(i) if side == "encoder" else n - 1 - int(i)
        blocks = "down_blocks" if side == "encoder" else "up_blocks"
        return f"{side}.{blocks}.{level}.{kind}rs.0.{rest}"
    m = re.fullmatch(r"(encoder|decoder)\.mid\.(block_1|block_2|attn_1)\.(.+)", key)
    if m:
        side, part, rest = m.groups()
        group = {"block_1": "resnets.0", "block_2": "resnets.1", "attn_1": "attentions.0"}[part]
        return f"{side}.mid_block.{group}.{_sub_module(rest)}"
    return re.sub(r"^(encoder|decoder)\.norm_out\.", r"\1.conv_norm_out.", key)


def _is_attn_projection(key: str) -> bool:
    return re.search(r"\.(attn\.\d+|attn_1)\.(q|k|v|proj_out)\.weight$", key) is not None


def to_diffusers(state_dict: dict, config: VQGANConfig) -> dict[str, np.ndarray]:
    """Taming state dict -> diffusers ``VQModel`` state dict (1x1 conv -> Linear weights)."""
    out = {}
    for k, v in state_dict.items():
        v = np.asarray(v)
        out[diffusers_key(k, config)] = v[:, :, 0, 0] if _is_attn_projection(k) else v
    return out


def from_diffusers(state_dict: dict, config: VQGANConfig) -> dict[str, np.ndarray]:
    """Diffusers ``VQModel`` state dict -> taming state dict."""
    shapes = taming_shapes(config)
    back = {diffusers_key(k, config): k for k in shapes}
    unknown = sorted(set(state_dict) - set(back))
    if unknown:
        raise InputError(f"vqgan: diffusers keys with no taming counterpart: {unknown[:8]}")
    out = {}
    for dk, v in state_dict.items():
        k = back[dk]
        out[k] = np.asarray(v).reshape(shapes[k])
    return out


def diffusers_kwargs(config: VQGANConfig) -> dict:
    """``diffusers.VQModel(**kwargs)`` with taming's architecture for ``config``."""
    n = len(config.ch_mult)
    # Feature-map size of each level, counted from the nominal resolution as taming does.
    res = [config.resolution // 2**i for i in range(n)]
    attn = [r in config.attn_resolutions for r in res]
    return dict(
        in_channels=config.in_channels,
        out_channels=config.out_ch,
        down_block_types=tuple(
            "AttnDownEncoderBlock2D" if a else "DownEncoderBlock2D" for a in attn
        ),
        up_block_types=tuple(
            "AttnUpDecoderBlock2D" if a else "UpDecoderBlock2D" for a in reversed(attn)
        ),
        block_out_channels=tuple(config.ch * m for m in config.ch_mult),
        layers_per_block=config.num_res_blocks,
        act_fn="silu",
        latent_channels=config.z_channels,
        sample_size=config.resolution,
        num_vq_embeddings=config.n_embed,
        norm_num_groups=32,
        vq_embed_dim=config.embed_dim,
        mid_block_add_attention=True,
        lookup_from_codebook=True,
    )


def chameleon_kwargs(config: VQGANConfig) -> dict:
    """``transformers.ChameleonVQVAEConfig(**kwargs)`` for ``config``."""
    return dict(
        embed_dim=config.embed_dim,
        num_embeddings=config.n_embed,
        double_latent=config.double_z,
        latent_channels=config.z_channels,
        resolution=config.resolution,
        in_channels=config.in_channels,
        base_channels=config.ch,
        channel_multiplier=list(config.ch_mult),
        num_res_blocks=config.num_res_blocks,
        attn_resolutions=list(config.attn_resolutions),
        dropout=config.dropout,
        attn_type="vanilla",
    )


def _tensors(state_dict: dict):
    # torch is an optional extra (the torch peers only).
    import torch

    return {k: torch.from_numpy(np.array(v, dtype=np.float32)) for k, v in state_dict.items()}


def diffusers_vqmodel(state_dict: dict, config: VQGANConfig):
    """A ``diffusers.VQModel`` (eval mode) holding a taming state dict's weights."""
    # diffusers is an optional extra (the decode reference only).
    from diffusers import VQModel

    model = VQModel(**diffusers_kwargs(config))
    model.load_state_dict(_tensors(to_diffusers(state_dict, config)), strict=True)
    return model.eval()


def chameleon_vqvae(state_dict: dict, config: VQGANConfig):
    """A ``transformers.ChameleonVQVAE`` (encoder side only) holding taming weights."""
    # transformers is an optional extra (the encode reference only).
    from transformers import ChameleonVQVAE, ChameleonVQVAEConfig

    model = ChameleonVQVAE(ChameleonVQVAEConfig(**chameleon_kwargs(config)))
    keys = set(model.state_dict())
    model.load_state_dict(_tensors({k: v for k, v in state_dict.items() if k in keys}))
    return model.eval()
