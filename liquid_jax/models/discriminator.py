"""PatchGAN discriminator (taming's ``NLayerDiscriminator``) for VQGAN training.

GroupNorm replaces taming's BatchNorm: batch statistics would make the training step
depend on how the batch is split over devices, and buy nothing at this scale.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

_INIT = nnx.initializers.normal(0.02)


def _conv(cin: int, cout: int, stride: int, bias: bool, rngs: nnx.Rngs) -> nnx.Conv:
    return nnx.Conv(
        cin,
        cout,
        kernel_size=(4, 4),
        strides=(stride, stride),
        padding=((1, 1), (1, 1)),
        use_bias=bias,
        kernel_init=nnx.with_partitioning(_INIT, (None, None, "conv_in", "conv_out")),
        rngs=rngs,
    )


class PatchDiscriminator(nnx.Module):
    """images: float32[B, H, W, C] in [-1, 1] -> patch logits float32[B, H', W', 1]."""

    def __init__(self, in_channels: int = 3, ndf: int = 64, n_layers: int = 3, *, rngs: nnx.Rngs):
        convs = [_conv(in_channels, ndf, 2, True, rngs)]
        norms = []
        cout = ndf
        for n in range(1, n_layers + 1):
            cin, cout = cout, ndf * min(2**n, 8)
            convs.append(_conv(cin, cout, 2 if n < n_layers else 1, False, rngs))
            norms.append(nnx.GroupNorm(cout, num_groups=min(32, cout // 4), rngs=rngs))
        self.convs = nnx.List(convs)
        self.norms = nnx.List(norms)
        self.head = _conv(cout, 1, 1, True, rngs)

    def __call__(self, images: jax.Array) -> jax.Array:
        x = jax.nn.leaky_relu(self.convs[0](images), 0.2)
        for conv, norm in zip(self.convs[1:], self.norms):
            x = jax.nn.leaky_relu(norm(conv(x)), 0.2)
        return self.head(x).astype(jnp.float32)
