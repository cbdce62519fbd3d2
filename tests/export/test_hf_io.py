"""Checkpoint reading/writing: sharded files, dtypes, meshes, and errors that name the problem."""

import json
import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax.sharding import PartitionSpec as P
from safetensors.numpy import load_file, save_file

from liquid_jax.export import load_hf, save_hf
from liquid_jax.export.hf_config import hf_config_from_spec
from liquid_jax.models import Transformer
from liquid_jax.parallel import MeshConfig, make_mesh
from tests.tiny import tiny_spec


def tiny(family="llama", **kw):
    return Transformer(tiny_spec(family, **{"bos_token_id": 2, "eos_token_id": 1, **kw}),
                       nnx.Rngs(3))  # fmt: skip


def params(model):
    return {p: np.asarray(v.get_value()) for p, v in nnx.to_flat_state(nnx.state(model))}


def assert_same_params(a, b):
    pa, pb = params(a), params(b)
    assert pa.keys() == pb.keys()
    for k in pa:
        np.testing.assert_array_equal(pa[k], pb[k], err_msg=str(k))


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    model = tiny()
    path = str(tmp_path_factory.mktemp("llama"))
    save_hf(model, path)
    return model, path


def test_round_trip_is_exact_and_files_are_hf_shaped(saved):
    model, path = saved
    assert sorted(os.listdir(path)) == [
        "config.json",
        "generation_config.json",
        "model.safetensors",
    ]
    tensors = load_file(os.path.join(path, "model.safetensors"))
    assert tensors["model.embed_tokens.weight"].shape == (300, 64)  # padding trimmed
    assert tensors["lm_head.weight"].shape == (300, 64)
    assert tensors["model.layers.1.self_attn.k_proj.weight"].shape == (32, 64)
    assert_same_params(load_hf(path), model)


def test_sharded_checkpoint_with_index_loads_on_a_mesh(saved, tmp_path, cpu_devices):
    model, _ = saved
    save_hf(model, str(tmp_path), max_shard_bytes=40_000)
    with open(tmp_path / "model.safetensors.index.json") as f:
        weight_map = json.load(f)["weight_map"]
    assert len(set(weight_map.values())) > 2 and "model.safetensors" not in os.listdir(tmp_path)
    mesh = make_mesh(MeshConfig(data=2, fsdp=2, tensor=2))
    loaded = load_hf(str(tmp_path), mesh=mesh)
    assert loaded.layers.mlp.up_proj.kernel[...].sharding.spec == P(None, "fsdp", "tensor")
    assert_same_params(loaded, model)


def test_bfloat16_save_and_load(saved, tmp_path):
    model, _ = saved
    save_hf(model, str(tmp_path), dtype=jnp.bfloat16)
    with open(tmp_path / "config.json") as f:
        assert json.load(f)["torch_dtype"] == "bfloat16"
    loaded = load_hf(str(tmp_path), dtype=jnp.bfloat16)
    assert loaded.spec.param_dtype == jnp.bfloat16 and loaded.spec.dtype == jnp.bfloat16
    assert loaded.embed_tokens.embedding[...].dtype == jnp.bfloat16
    logits = nnx.jit(lambda m, t: m(t))(loaded, jnp.ones((1, 4), jnp.int32))
    assert logits.dtype == jnp.float32


def _edit_checkpoint(src, dst, edit):
    os.makedirs(dst, exist_ok=True)
    for name in ("config.json", "generation_config.json"):
        with open(os.path.join(src, name)) as f, open(os.path.join(dst, name), "w") as g:
            g.write(f.read())
    tensors = load_file(os.path.join(src, "model.safetensors"))
    edit(tensors)
    save_file(tensors, os.path.join(dst, "model.safetensors"), metadata={"format": "pt"})
    return str(dst)


def test_missing_tensor_is_named(saved, tmp_path):
    path = _edit_checkpoint(
        saved[1], tmp_path, lambda t: t.pop("model.layers.1.mlp.up_proj.weight")
    )
    with pytest.raises(
        ValueError,
        match=r"'model.layers.1.mlp.up_proj.weight' is missing.*"
        r"expected shape \(128, 64\)",
    ):
        load_hf(path)


def test_wrong_shape_is_named(saved, tmp_path):
    def edit(t):
        t["model.layers.0.self_attn.q_proj.weight"] = np.zeros((60, 64), np.float32)

    path = _edit_checkpoint(saved[1], tmp_path, edit)
    with pytest.raises(
        ValueError,
        match=r"'model.layers.0.self_attn.q_proj.weight' has shape "
        r"\(60, 64\), expected \(64, 64\)",
    ):
        load_hf(path)


def test_unexpected_tensors_are_named(saved, tmp_path):
    def edit(t):
        t["model.layers.0.self_attn.q_norm.weight"] = np.zeros((16,), np.float32)
        t["model.layers.0.self_attn.rotary_emb.inv_freq"] = np.zeros((8,), np.float32)

    path = _edit_checkpoint(saved[1], tmp_path, edit)
    with pytest.raises(ValueError, match=r"1 unexpected tensors.*q_norm"):
        load_hf(path)


def test_unknown_model_type_lists_supported(saved, tmp_path):
    config = json.loads(Path(os.path.join(saved[1], "config.json")).read_text())
    config.update(model_type="gpt2", architectures=["GPT2LMHeadModel"])
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(
        ValueError,
        match=r"unsupported model_type 'gpt2'.*'gemma', 'gemma2', "
        r"'qwen2', 'llama'",
    ):
        load_hf(str(tmp_path))


def test_architectures_name_is_enough(saved, tmp_path):
    path = _edit_checkpoint(saved[1], tmp_path, lambda t: None)
    config = json.loads(Path(os.path.join(path, "config.json")).read_text())
    del config["model_type"]
    (tmp_path / "config.json").write_text(json.dumps(config))
    assert load_hf(path).spec.family == "llama"


def test_no_safetensors_is_a_clear_error(tmp_path, saved):
    (tmp_path / "config.json").write_text(Path(saved[1], "config.json").read_text())
    (tmp_path / "pytorch_model.bin").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="only safetensors"):
        load_hf(str(tmp_path))


def test_specs_transformers_cannot_express_are_refused():
    spec = tiny().spec.replace(norm_plus_one=True)
    with pytest.raises(ValueError, match="norm_plus_one"):
        hf_config_from_spec(spec)


def test_unsharded_load_places_on_default_device(saved):
    loaded = load_hf(saved[1])
    assert loaded.norm.scale[...].devices() == {jax.devices()[0]}
