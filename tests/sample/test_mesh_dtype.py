"""``--mesh`` and ``--dtype`` of sampling: a sharded model draws the one-device tokens,
bfloat16 weights are cast once at load."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from liquid_jax.errors import ConfigError
from liquid_jax.parallel import MeshConfig
from liquid_jax.runs.load import cast_model, sampling_dtype
from liquid_jax.sample.loading import load_for_sampling, sampling_mesh


@pytest.fixture(scope="module")
def hf_dir(assets, tmp_path_factory):
    from liquid_jax.export import save_hf, save_vqgan

    model, layout, _, vqgan, tokenizer_dir = assets
    path = str(tmp_path_factory.mktemp("liquid_hf_mesh"))
    save_hf(model, path, tokenizer=tokenizer_dir)
    layout.save(path)
    save_vqgan(vqgan, os.path.join(path, "vqgan"), formats=("safetensors",))
    return path


def test_mesh_text_parses_into_mesh_config():
    assert MeshConfig.parse("tensor=8") == MeshConfig(tensor=8)
    assert MeshConfig.parse(" fsdp=2, tensor=2 ,data=2") == MeshConfig(data=2, fsdp=2, tensor=2)
    for bad in ("tensor", "tensors=2", "tensor=two", ""):
        with pytest.raises(ConfigError, match="mesh"):
            MeshConfig.parse(bad)
    mesh = sampling_mesh("tensor=2")
    assert dict(mesh.shape) == {"data": 4, "fsdp": 1, "tensor": 2}


@pytest.mark.parametrize("mesh", ["tensor=2"])
def test_sharded_sampling_draws_the_one_device_tokens(hf_dir, sampler, mesh):
    sharded = load_for_sampling(hf_dir, mesh=mesh, dtype="float32", batch_size=4)
    state = jax.tree.leaves(sharded.decoder.state)
    embedding = sharded.decoder.state["embed_tokens"]["embedding"][...]
    assert embedding.sharding.spec[0] == "tensor"  # vocabulary rows split
    assert len(embedding.addressable_shards[0].data) == embedding.shape[0] // 2
    assert all(x.dtype == jnp.float32 for x in state if jnp.issubdtype(x.dtype, jnp.floating))
    kw = dict(grid=(2, 3), temperature=0.0, cfg_scale=3.0, decode=False)
    np.testing.assert_array_equal(
        sharded.t2i(["w1 w2", "w3"], **kw).codes, sampler.t2i(["w1 w2", "w3"], **kw).codes
    )
    prompts = ["w1 w2 w3", "w9", "w4"]
    assert sharded.text(prompts, max_new_tokens=8) == sampler.text(prompts, max_new_tokens=8)


def test_bfloat16_weights_are_cast_once_at_load(hf_dir, sampler):
    assert sampling_dtype(None) == jnp.float32  # CPU
    assert sampling_dtype("bfloat16") == jnp.bfloat16
    with pytest.raises(ConfigError, match="dtype 'float16'"):
        sampling_dtype("float16")
    half = load_for_sampling(hf_dir, dtype="bfloat16")
    floats = [
        x for x in jax.tree.leaves(half.decoder.state) if jnp.issubdtype(x.dtype, jnp.floating)
    ]
    assert floats and all(x.dtype == jnp.bfloat16 for x in floats)
    spec = half.decoder.model_spec
    assert spec.param_dtype == spec.dtype == jnp.bfloat16  # decode_weights casts nothing
    kw = dict(grid=(2, 2), temperature=0.0, cfg_scale=3.0, decode=False)
    codes = half.t2i("w1 w2", **kw).codes
    assert codes.shape == (1, 2, 2) and codes.min() >= 0


def test_cast_model_casts_a_float32_model(assets):
    """What a train checkpoint's model goes through with ``--dtype``."""
    model = assets[0]
    assert cast_model(model, jnp.float32) is model
    half = cast_model(model, jnp.bfloat16)
    assert half.spec.param_dtype == half.spec.dtype == jnp.bfloat16
    assert half.embed_tokens.embedding[...].dtype == jnp.bfloat16
    tokens = jnp.asarray([[2, 10, 11, 12]], jnp.int32)
    want, got = np.asarray(model(tokens)), np.asarray(half(tokens))
    assert np.abs(got - want)[..., :100].max() < 0.1 * np.abs(want[..., :100]).max()
