"""Parity with PyTorch peers on random weights (no downloads), float32, tolerance 1e-4.

Encode is checked against ``transformers.ChameleonVQVAE`` (taming's encoder, quant_conv
and quantizer under taming's own key names); decode against ``diffusers.VQModel``
(taming's decoder structure with renamed keys). ``transformers.JanusVQVAE`` is not a
reference: its ``decode`` l2-normalises the codebook, and its decoder agrees with
taming's only when attention sits at the lowest level.
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("transformers")

from liquid_jax.export.vqgan import vqgan_from_state_dict  # noqa: E402
from liquid_jax.export.vqgan_torch import (  # noqa: E402
    chameleon_kwargs,
    chameleon_vqvae,
    diffusers_kwargs,
    diffusers_vqmodel,
    from_diffusers,
    taming_shapes,
)
from liquid_jax.models import VQGANConfig, chameleon_vqgan  # noqa: E402
from tests.tiny import tiny_vqgan_config  # noqa: E402

pytestmark = pytest.mark.torch

CASES = {
    # (config, image height, width)
    "plain-square": (tiny_vqgan_config(), 32, 32),
    # Attention inside both resolution levels, on a non-square image.
    "attn-levels": (tiny_vqgan_config(attn_resolutions=(32, 16)), 32, 48),
}


def random_taming_state_dict(config: VQGANConfig, seed: int = 0) -> dict[str, np.ndarray]:
    """Weights at scales that keep activations O(1), so every layer matters."""
    rng = np.random.default_rng(seed)
    out = {}
    for key, shape in taming_shapes(config).items():
        if key.endswith(".bias"):
            x = 0.1 * rng.standard_normal(shape)
        elif len(shape) == 1:  # GroupNorm scale
            x = 1.0 + 0.1 * rng.standard_normal(shape)
        elif len(shape) == 2:  # codebook
            x = rng.standard_normal(shape)
        else:  # conv, fan-in scaled
            x = rng.standard_normal(shape) / np.sqrt(np.prod(shape[1:]))
        out[key] = x.astype(np.float32)
    return out


@pytest.fixture(scope="module", params=sorted(CASES))
def case(request):
    config, h, w = CASES[request.param]
    sd = random_taming_state_dict(config)
    images = np.random.default_rng(1).uniform(-1, 1, (2, h, w, 3)).astype(np.float32)
    return config, sd, images, vqgan_from_state_dict(sd, config)


def _nchw(x):
    return torch.from_numpy(np.ascontiguousarray(np.transpose(x, (0, 3, 1, 2))))


def test_encode_matches_chameleon_vqvae(case):
    config, sd, images, model = case
    ref = chameleon_vqvae(sd, config)
    with torch.no_grad():
        out = ref.encode(_nchw(images))
    b, h, w = images.shape[0], images.shape[1] // 2, images.shape[2] // 2
    ref_codes = out.image_tokens.numpy().reshape(b, h, w)  # comes back flattened
    ref_zq = out.quantized_last_hidden_state.numpy().transpose(0, 2, 3, 1)

    z_q, codes, _ = model.quantize(model.encode_latents(images))
    np.testing.assert_array_equal(np.asarray(codes), ref_codes)
    np.testing.assert_array_equal(np.asarray(model.encode(images)), ref_codes)
    np.testing.assert_allclose(np.asarray(z_q), ref_zq, atol=1e-4, rtol=0)
    assert len(np.unique(ref_codes)) > 4  # the codes actually vary


def test_decode_matches_diffusers_vqmodel(case):
    config, sd, images, model = case
    ref = diffusers_vqmodel(sd, config)
    codes = np.asarray(model.encode(images))
    b, h, w = codes.shape
    with torch.no_grad():
        want = ref.decode(
            torch.from_numpy(codes.reshape(-1).astype(np.int64)),
            force_not_quantize=True,
            shape=(b, h, w, config.embed_dim),
        ).sample.numpy()
        # diffusers' encoder is taming's too: a second check of the latents.
        want_latents = ref.encode(_nchw(images)).latents.numpy().transpose(0, 2, 3, 1)
    got = np.asarray(model.decode(codes))
    assert got.shape == (b, images.shape[1], images.shape[2], 3)
    np.testing.assert_allclose(got, want.transpose(0, 2, 3, 1), atol=1e-4, rtol=0)
    np.testing.assert_allclose(model.encode_latents(images), want_latents, atol=1e-4, rtol=0)


def test_full_size_keys_and_shapes_match_both_references():
    """Chameleon's real config, built on torch's meta device (nothing allocated)."""
    from diffusers import VQModel
    from transformers import ChameleonVQVAE, ChameleonVQVAEConfig

    config = chameleon_vqgan()
    ours = taming_shapes(config)
    with torch.device("meta"):
        cham = ChameleonVQVAE(ChameleonVQVAEConfig(**chameleon_kwargs(config)))
        diff = VQModel(**diffusers_kwargs(config))
    cham_shapes = {k: tuple(v.shape) for k, v in cham.state_dict().items()}
    assert cham_shapes == {k: s for k, s in ours.items() if not k.startswith("decoder.")}
    diff_sd = {k: np.empty(v.shape, np.float32) for k, v in diff.state_dict().items()}
    assert {k: v.shape for k, v in from_diffusers(diff_sd, config).items()} == ours
