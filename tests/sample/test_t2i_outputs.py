"""What ``Sampler.t2i`` hands back: images that are its codes decoded, and a size prefix
that says width before height.

Mutations tried:
- ``api.Sampler.t2i`` decoding the previous sample's codes (``np.roll(codes, 1, 0)``):
  ``test_images_are_the_codes_decoded`` fails;
- ``image_size = (grid[0] * f, grid[1] * f)`` (height first):
  ``test_size_prefix_says_width_then_height`` fails.
"""

import numpy as np
from flax import nnx

from liquid_jax.data.formats import image_size_text
from liquid_jax.sample import t2i as t2i_lib
from liquid_jax.sample.api import Sampler


def test_images_are_the_codes_decoded(assets, sampler):
    """Each image is ``VQGAN.decode`` of that sample's own codes, mapped to uint8."""
    vqgan = assets[3]
    out = sampler.t2i(["w1 w2", "w3"], num_samples=2, grid=(2, 3), seed=1)
    assert len({c.tobytes() for c in out.codes}) == 4  # distinct samples
    decoded = np.asarray(nnx.jit(lambda m, c: m.decode(c))(vqgan, out.codes))
    want = np.round((np.clip(decoded, -1, 1) + 1) * 127.5).astype(np.uint8)
    assert out.images.shape == want.shape == (4, 8, 12, 3)
    # Compiled separately from the sampler's decode: allow one level of rounding.
    assert np.abs(out.images.astype(int) - want.astype(int)).max() <= 1
    assert np.mean(out.images == want) > 0.99


def test_size_prefix_says_width_then_height(assets, monkeypatch):
    """A 2x5 grid (2 rows of 5 codes, 4 px each) is an image 20 px wide and 8 px high:
    both prompt rows carry ``Image Size: Width is 20 Height is 8.``."""
    model, layout, tok, vqgan, _ = assets
    seen = []
    rows = t2i_lib.t2i_rows

    def spy(*args, **kwargs):
        seen.append(kwargs["image_size"])
        return rows(*args, **kwargs)

    monkeypatch.setattr(t2i_lib, "t2i_rows", spy)
    sized = Sampler(model, layout, tok, vqgan, size_prefix=True)
    out = sized.t2i("w5 w6", grid="2x5", num_samples=1, decode=False)
    assert out.codes.shape == (1, 2, 5)
    assert seen == [(20, 8)]
    assert image_size_text(*seen[0]) == "Image Size: Width is 20 Height is 8."
