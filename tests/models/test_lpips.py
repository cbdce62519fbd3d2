import jax.numpy as jnp
import numpy as np
import pytest
from safetensors.numpy import save_file

from liquid_jax.models.discriminator import PatchDiscriminator
from liquid_jax.models.lpips import _CHANNELS, _CONV_INDICES, load_lpips


def _vgg_file(tmp_path, drop=None, heads=True):
    rng = np.random.default_rng(0)
    tensors, cin = {}, 3
    for idx, cout in zip(_CONV_INDICES, _CHANNELS):
        std = np.sqrt(2.0 / (9 * cin))
        tensors[f"features.{idx}.weight"] = (rng.normal(0, std, (cout, cin, 3, 3))).astype(
            np.float32
        )
        tensors[f"features.{idx}.bias"] = np.zeros((cout,), np.float32)
        cin = cout
    if heads:
        for k, c in enumerate((64, 128, 256, 512, 512)):
            tensors[f"lin{k}.model.1.weight"] = rng.uniform(0, 1, (1, c, 1, 1)).astype(np.float32)
    tensors.pop(drop, None)
    path = str(tmp_path / "vgg.safetensors")
    save_file(tensors, path)
    return path


def test_lpips_is_a_distance(tmp_path):
    lp = load_lpips(_vgg_file(tmp_path))
    rng = np.random.default_rng(1)
    a = jnp.asarray(rng.uniform(-1, 1, (2, 32, 32, 3)), jnp.float32)
    b = jnp.clip(a + 0.3 * jnp.asarray(rng.normal(size=a.shape), jnp.float32), -1, 1)
    c = jnp.clip(a + 0.05 * jnp.asarray(rng.normal(size=a.shape), jnp.float32), -1, 1)
    same, far, near = lp(a, a), lp(a, b), lp(a, c)
    assert np.allclose(same, 0.0, atol=1e-6)
    assert np.all(far > near) and np.all(near > 0)


def test_lpips_names_missing_and_misshapen_tensors(tmp_path):
    with pytest.raises(ValueError, match=r"features\.7\.weight.*missing"):
        load_lpips(_vgg_file(tmp_path, drop="features.7.weight"))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_lpips(str(tmp_path / "none.safetensors"))


def test_patch_discriminator_shape():
    from flax import nnx

    d = PatchDiscriminator(3, 16, 2, rngs=nnx.Rngs(0))
    assert d(jnp.zeros((2, 32, 32, 3))).shape == (2, 6, 6, 1)
