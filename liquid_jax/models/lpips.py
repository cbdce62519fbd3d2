"""LPIPS perceptual distance on VGG16 features, with weights from a user-supplied file.

Nothing is downloaded: the file holds torchvision's VGG16 ``features.{i}.weight/bias``
tensors and, optionally, LPIPS' linear heads ``lin{k}.model.1.weight`` (without heads
every channel weighs the same, which is the plain normalised-feature distance).
Accepted formats: ``.safetensors`` or a torch ``.pth``/``.pt`` state dict (read with
``weights_only=True``).
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from liquid_jax.errors import InputError, PathNotFoundError

# torchvision VGG16 ``features`` indices of the 13 convolutions, and after which of
# them LPIPS taps a feature map (relu1_2, relu2_2, relu3_3, relu4_3, relu5_3).
_CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)
_CHANNELS = (64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512)
_TAP_AFTER = (1, 3, 6, 9, 12)  # positions in _CONV_INDICES
_POOL_AFTER = (1, 3, 6, 9)
_SHIFT = np.array([-0.030, -0.088, -0.188], np.float32)
_SCALE = np.array([0.458, 0.448, 0.450], np.float32)


class LPIPS(nnx.Module):
    """Perceptual distance: images float32[B, H, W, 3] in [-1, 1] (x2) -> float32[B]."""

    def __init__(self, *, rngs: nnx.Rngs):
        convs, cin = [], 3
        for cout in _CHANNELS:
            convs.append(nnx.Conv(cin, cout, (3, 3), padding=1, rngs=rngs))
            cin = cout
        self.convs = nnx.List(convs)
        self.heads = nnx.List(
            [nnx.Param(jnp.ones((_CHANNELS[i],), jnp.float32)) for i in _TAP_AFTER]
        )

    def features(self, images: jax.Array) -> list[jax.Array]:
        x = (images - _SHIFT) / _SCALE
        taps = []
        for i, conv in enumerate(self.convs):
            x = jax.nn.relu(conv(x))
            if i in _TAP_AFTER:
                taps.append(x)
            if i in _POOL_AFTER:
                x = nnx.max_pool(x, (2, 2), strides=(2, 2))
        return taps

    def __call__(self, a: jax.Array, b: jax.Array) -> jax.Array:
        total = 0.0
        for fa, fb, head in zip(self.features(a), self.features(b), self.heads):
            na = fa / (jnp.sqrt(jnp.sum(fa**2, -1, keepdims=True)) + 1e-10)
            nb = fb / (jnp.sqrt(jnp.sum(fb**2, -1, keepdims=True)) + 1e-10)
            total = total + jnp.mean(jnp.sum(head[...] * (na - nb) ** 2, -1), axis=(1, 2))
        return total


def _read_tensors(path: str) -> dict[str, np.ndarray]:
    if path.endswith(".safetensors"):
        # safetensors here, torch below: only the weight format at hand is needed.
        from safetensors.numpy import load_file

        return load_file(path)
    # torch is an optional extra, only for taming's .pth weights.
    import torch

    state = torch.load(path, map_location="cpu", weights_only=True)
    state = state.get("state_dict", state)
    return {k: v.float().numpy() for k, v in state.items()}


def load_lpips(path: str) -> LPIPS:
    """Builds ``LPIPS`` from a weight file; raises naming any missing or misshapen tensor."""
    if not os.path.exists(path):
        raise PathNotFoundError(f"perceptual loss weights: {path} does not exist")
    tensors = _read_tensors(path)
    # Accept LPIPS' own key prefix ("net.sliceN.I.weight" uses the same indices).
    tensors = {
        k.replace("net.", "features.", 1) if k.startswith("net.") else k: v
        for k, v in tensors.items()
    }
    for k in list(tensors):
        if k.startswith("features.slice"):
            _, _, idx, leaf = k.split(".")
            tensors[f"features.{idx}.{leaf}"] = tensors.pop(k)
    model = LPIPS(rngs=nnx.Rngs(0))
    cin = 3
    for conv, idx, cout in zip(model.convs, _CONV_INDICES, _CHANNELS):
        for leaf, shape in (("weight", (cout, cin, 3, 3)), ("bias", (cout,))):
            key = f"features.{idx}.{leaf}"
            if key not in tensors:
                raise InputError(f"{path}: tensor {key!r} is missing (VGG16 features)")
            if tuple(tensors[key].shape) != shape:
                raise InputError(
                    f"{path}: tensor {key!r} has shape "
                    f"{tuple(tensors[key].shape)}, expected {shape}"
                )
        conv.kernel[...] = jnp.asarray(tensors[f"features.{idx}.weight"].transpose(2, 3, 1, 0))
        conv.bias[...] = jnp.asarray(tensors[f"features.{idx}.bias"])
        cin = cout
    for k, head in enumerate(model.heads):
        key = f"lin{k}.model.1.weight"
        if key in tensors:
            head[...] = jnp.asarray(tensors[key].reshape(-1))
    return model
