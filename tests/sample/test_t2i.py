"""T2I: prompts as Liquid builds them, exact code counts, guidance, reproducibility."""

import dataclasses

import numpy as np
import pytest

from liquid_jax.data.formats import T2I_INSTRUCTIONS, t2i_prompt
from liquid_jax.sample.decode_loop import SamplingParams
from liquid_jax.sample.prompts import left_pad
from liquid_jax.sample.t2i import parse_grid, t2i_decode_spec, t2i_rows
from tests.tiny import NUM_CODES, TEXT_VOCAB

CAPTIONS = ["w1 w2 w3", "w4"]


def test_rows_are_the_reference_prompts(assets):
    _, layout, tok, _, _ = assets
    cond, uncond = t2i_rows(tok, layout, "w1 w2", cfg=True)
    assert list(cond) == [layout.bos_id, *tok.encode("w1 w2" + T2I_INSTRUCTIONS[0]), layout.boi_id]
    assert list(uncond) == [layout.bos_id, layout.unconditional_id, layout.boi_id]
    sized = t2i_rows(tok, layout, "w1", cfg=True, image_size=(64, 32))
    assert [list(r) for r in sized] == [
        list(t2i_prompt(tok, layout, "w1", image_size=(64, 32))),
        list(t2i_prompt(tok, layout, "w1", unconditional=True, image_size=(64, 32))),
    ]
    assert len(t2i_rows(tok, layout, "w1", cfg=False)) == 1


def test_reference_defaults_and_top_k_clamp(assets):
    _, layout, _, _, _ = assets
    spec, params = t2i_decode_spec(layout, (2, 3))
    assert spec.max_new_tokens == 6 and spec.cfg and spec.nucleus and not spec.greedy
    assert spec.token_range == (TEXT_VOCAB, TEXT_VOCAB + NUM_CODES)
    assert spec.top_k == 0  # 4096 clamped to the 64 codes: keeps all, so no top-k pass
    assert np.allclose([params.temperature, params.top_p, params.cfg_scale], [0.99, 0.96, 7.0])
    assert t2i_decode_spec(layout, (2, 3), top_k=10)[0].top_k == 10
    assert not t2i_decode_spec(layout, (2, 3), cfg_scale=1.0)[0].cfg
    assert not t2i_decode_spec(layout, (2, 3), cfg_scale=None)[0].cfg
    assert parse_grid("3x5") == (3, 5) and parse_grid(4) == (4, 4) and parse_grid("2") == (2, 2)


@pytest.mark.parametrize("grid", [(4, 4), (2, 6), (1, 3)])
def test_exactly_h_times_w_codes_and_images_of_that_shape(sampler, grid):
    out = sampler.t2i(CAPTIONS, num_samples=2, grid=grid, seed=0)
    h, w = grid
    assert out.codes.shape == (4, h, w) and out.codes.dtype == np.int32
    assert out.codes.min() >= 0 and out.codes.max() < NUM_CODES
    assert out.images.shape == (4, 4 * h, 4 * w, 3) and out.images.dtype == np.uint8
    assert out.prompts == [CAPTIONS[0]] * 2 + [CAPTIONS[1]] * 2
    np.testing.assert_array_equal(out.sample_ids, np.arange(4))


def test_same_seed_same_images_rows_differ_seeds_differ(sampler):
    a = sampler.t2i(CAPTIONS, num_samples=2, seed=7)
    b = sampler.t2i(CAPTIONS, num_samples=2, seed=7)
    np.testing.assert_array_equal(a.codes, b.codes)
    np.testing.assert_array_equal(a.images, b.images)
    flat = a.codes.reshape(4, -1)
    assert len({tuple(r) for r in flat}) == 4  # same caption, different samples differ
    c = sampler.t2i(CAPTIONS, num_samples=2, seed=8)
    assert not np.array_equal(a.codes, c.codes)


def test_rows_do_not_depend_on_batch_size(sampler):
    """Sample i draws from stream i whatever batch it runs in (with padding rows)."""
    ref = sampler.t2i(CAPTIONS, num_samples=3, seed=3, batch_size=6).codes
    for size in (1, 4):
        np.testing.assert_array_equal(
            sampler.t2i(CAPTIONS, num_samples=3, seed=3, batch_size=size).codes, ref
        )
    alone = sampler.t2i(CAPTIONS[1:], num_samples=3, seed=3, batch_size=6).codes
    # The second caption's samples are ids 0..2 when run alone, 3..5 above.
    assert not np.array_equal(alone, ref[3:])
    first = sampler.t2i(CAPTIONS[:1], num_samples=3, seed=3, batch_size=2).codes
    np.testing.assert_array_equal(first, ref[:3])


def test_guidance_at_scale_one_equals_the_conditional_rows(sampler, assets):
    """CFG rows with scale 1 draw exactly what the conditional rows alone draw."""
    _, layout, tok, _, _ = assets
    spec, params = t2i_decode_spec(layout, (3, 3), cfg_scale=1.0)
    pairs = [t2i_rows(tok, layout, c, cfg=True) for c in CAPTIONS]
    cond_only = sampler.decoder.generate(
        left_pad([p[0] for p in pairs], layout.pad_id), np.arange(2), 5, spec, params
    )
    forced = dataclasses.replace(spec, cfg=True)
    guided = sampler.decoder.generate(
        left_pad([r for p in pairs for r in p], layout.pad_id), np.arange(2), 5, forced, params
    )
    np.testing.assert_array_equal(guided.tokens, cond_only.tokens)
    # And a real scale changes the draws.
    strong = SamplingParams.of(0.99, 0.96, 7.0)
    other = sampler.decoder.generate(
        left_pad([r for p in pairs for r in p], layout.pad_id), np.arange(2), 5, forced, strong
    )
    assert not np.array_equal(other.tokens, cond_only.tokens)


def test_size_prefix_prompts_and_any_aspect_ratio(assets):
    from liquid_jax.sample.api import Sampler

    model, layout, tok, vqgan, _ = assets
    sized = Sampler(model, layout, tok, vqgan, size_prefix=True)
    out = sized.t2i("w5 w6", grid="2x5", num_samples=1)
    assert out.codes.shape == (1, 2, 5) and out.images.shape == (1, 8, 20, 3)


def test_sharded_sampler_equals_single_device(assets, sampler, cpu_devices):
    from liquid_jax.parallel import MeshConfig, make_mesh
    from liquid_jax.sample.api import Sampler

    model, layout, tok, vqgan, _ = assets
    mesh = make_mesh(MeshConfig(data=4, fsdp=1, tensor=2))
    sharded = Sampler(model, layout, tok, vqgan, mesh=mesh, batch_size=4)
    got = sharded.t2i(CAPTIONS, num_samples=3, seed=2, grid=(2, 2))
    ref = sampler.t2i(CAPTIONS, num_samples=3, seed=2, grid=(2, 2))
    np.testing.assert_array_equal(got.codes, ref.codes)
    np.testing.assert_array_equal(got.images, ref.images)
