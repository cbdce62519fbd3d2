import jax.numpy as jnp
import numpy as np
from scipy.ndimage import uniform_filter

from liquid_jax.data.images import to_uint8
from liquid_jax.evals.grid import image_grid
from liquid_jax.evals.reconstruction import codebook_stats, psnr, ssim


def _ssim_numpy(a, b, data_range=2.0, win=7):
    """Straightforward per-channel SSIM (uniform window, unbiased variance, valid region)."""
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    out = []
    for ch in range(a.shape[-1]):
        x, y = a[..., ch].astype(np.float64), b[..., ch].astype(np.float64)
        f = lambda z: uniform_filter(z, win)
        mx, my = f(x), f(y)
        n = win * win / (win * win - 1)
        vx, vy, cxy = n * (f(x * x) - mx * mx), n * (f(y * y) - my * my), n * (f(x * y) - mx * my)
        s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
        p = win // 2
        out.append(s[p:-p, p:-p])
    return np.mean(out)


def test_psnr_matches_definition():
    a = np.zeros((1, 4, 4, 3), np.float32)
    b = a + 0.1
    assert np.isclose(float(psnr(a, b)[0]), 10 * np.log10(4 / 0.01), atol=1e-4)


def test_ssim_matches_numpy_reference():
    rng = np.random.default_rng(0)
    a = rng.uniform(-1, 1, (2, 16, 20, 3)).astype(np.float32)
    b = np.clip(a + rng.normal(0, 0.2, a.shape), -1, 1).astype(np.float32)
    ours = np.asarray(ssim(jnp.asarray(a), jnp.asarray(b)))
    ref = [_ssim_numpy(a[i], b[i]) for i in range(2)]
    np.testing.assert_allclose(ours, ref, atol=1e-5)
    assert np.allclose(np.asarray(ssim(a, a)), 1.0, atol=1e-6)


def test_codebook_stats_usage_and_perplexity():
    stats = codebook_stats(jnp.array([0, 1, 2, 3, 0, 1, 2, 3]), 8)
    assert float(stats["codebook_usage"]) == 0.5
    assert np.isclose(float(stats["codebook_perplexity"]), 4.0)


def test_grid_layout():
    imgs = to_uint8(np.stack([np.full((2, 3, 3), v) for v in (-1.0, 0.0, 1.0)]))
    g = image_grid(imgs, cols=2, pad=1)
    assert g.shape == (2 * 3 + 1, 2 * 4 + 1, 3)
    assert g[1, 1, 0] == 0 and g[1, 5, 0] == 128 and g[4, 1, 0] == 255
