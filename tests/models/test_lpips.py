import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
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


@nnx.jit
def _distance(model, a, b):
    return model(a, b)


def test_lpips_is_a_distance(tmp_path):
    model = load_lpips(_vgg_file(tmp_path))
    lp = lambda x, y: np.asarray(_distance(model, x, y))  # noqa: E731
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


def _torch_lpips(path, a, b):
    """LPIPS as the ``lpips`` package computes it (ScalingLayer, torchvision VGG16 slices
    relu1_2 .. relu5_3, channel-unit normalisation, 1x1 linear heads, spatial mean),
    written in PyTorch from the same weight file; images NHWC in [-1, 1]."""
    import torch
    import torch.nn.functional as F
    from safetensors.torch import load_file

    w = load_file(path)
    shift = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)
    # torchvision's vgg16().features, cut where LPIPS cuts its five slices.
    slices = [[0, 2], ["M", 5, 7], ["M", 10, 12, 14], ["M", 17, 19, 21], ["M", 24, 26, 28]]

    def taps(x):
        x = (torch.as_tensor(np.array(x)).permute(0, 3, 1, 2) - shift) / scale
        out = []
        for layers in slices:
            for i in layers:
                if i == "M":
                    x = F.max_pool2d(x, 2, 2)
                else:
                    x = F.relu(F.conv2d(x, w[f"features.{i}.weight"], w[f"features.{i}.bias"],
                                        padding=1))  # fmt: skip
            out.append(x)
        return out

    total = 0.0
    for k, (fa, fb) in enumerate(zip(taps(a), taps(b))):
        na = fa / (torch.sqrt(torch.sum(fa**2, dim=1, keepdim=True)) + 1e-10)
        nb = fb / (torch.sqrt(torch.sum(fb**2, dim=1, keepdim=True)) + 1e-10)
        d = F.conv2d((na - nb) ** 2, w[f"lin{k}.model.1.weight"])
        total = total + d.mean(dim=(2, 3))[:, 0]
    return total.numpy()


@pytest.mark.torch
def test_lpips_matches_a_pytorch_reference(tmp_path):
    """Mutations tried: pooling after the wrong convolutions (``_POOL_AFTER = (1, 3, 6,
    10)``), the input scaling inverted (``(images - _SHIFT) * _SCALE``), normalising over
    space instead of channels (``axis=(1, 2)``): each fails this test."""
    pytest.importorskip("torch")
    path = _vgg_file(tmp_path)
    rng = np.random.default_rng(2)
    a = rng.uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
    b = np.clip(a + 0.2 * rng.normal(size=a.shape), -1, 1).astype(np.float32)
    got = np.asarray(_distance(load_lpips(path), jnp.asarray(a), jnp.asarray(b)))
    np.testing.assert_allclose(got, _torch_lpips(path, a, b), rtol=2e-4)


@pytest.mark.torch
def test_patch_discriminator_matches_a_pytorch_reference():
    """taming's NLayerDiscriminator (4x4 convolutions, padding 1, stride 2 but in the last
    two layers, leaky ReLU 0.2) with GroupNorm in place of BatchNorm, in PyTorch with the
    same weights. Mutation tried: padding ``((2, 2), (2, 2))``: fails (shape and values)."""
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F

    d = PatchDiscriminator(3, 16, 2, rngs=nnx.Rngs(0))
    x = np.random.default_rng(3).uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
    got = np.asarray(d(jnp.asarray(x)))
    assert got.shape == (2, 6, 6, 1)

    def conv(layer, h, stride):
        kernel = torch.as_tensor(np.array(layer.kernel[...])).permute(3, 2, 0, 1)
        bias = None if layer.bias is None else torch.as_tensor(np.array(layer.bias[...]))
        return F.conv2d(h, kernel, bias, stride=stride, padding=1)

    h = F.leaky_relu(conv(d.convs[0], torch.as_tensor(x).permute(0, 3, 1, 2), 2), 0.2)
    for n, (layer, norm) in enumerate(zip(d.convs[1:], d.norms), start=1):
        h = conv(layer, h, 2 if n < len(d.norms) else 1)
        h = F.group_norm(h, norm.num_groups, torch.as_tensor(np.array(norm.scale[...])),
                         torch.as_tensor(np.array(norm.bias[...])), eps=norm.epsilon)  # fmt: skip
        h = F.leaky_relu(h, 0.2)
    want = conv(d.head, h, 1).permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
