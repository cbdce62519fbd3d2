"""taming / Chameleon checkpoints: save -> load round trips, file layout, clear failures."""

import logging
import os

import jax
import numpy as np
import pytest
import yaml
from flax import nnx

from liquid_jax.export import load_vqgan, save_vqgan, vqgan_from_state_dict, vqgan_to_state_dict
from liquid_jax.export.vqgan import config_from_taming, config_to_taming, read_state_dict
from liquid_jax.export.vqgan_torch import taming_shapes
from liquid_jax.models import VQGAN, VQGANConfig, chameleon_vqgan
from liquid_jax.parallel import MeshConfig, make_mesh

CONFIG = VQGANConfig(
    ch=32, ch_mult=(1, 2, 2), num_res_blocks=1, attn_resolutions=(8,),
    z_channels=16, embed_dim=8, n_embed=64, resolution=32,
)  # fmt: skip

# Chameleon's vqgan.yaml as shipped (the lossconfig is only read by taming's trainer).
CHAMELEON_YAML = """
model:
  base_learning_rate: 4.5e-06
  target: taming.models.vqgan.VQModel
  params:
    embed_dim: 256
    n_embed: 8192
    ddconfig:
      double_z: false
      z_channels: 256
      resolution: 512
      in_channels: 3
      out_ch: 3
      ch: 128
      ch_mult: [1, 1, 2, 2, 4]
      num_res_blocks: 2
      attn_resolutions: []
      dropout: 0.0
    lossconfig:
      target: taming.modules.losses.vqperceptual.VQLPIPSWithDiscriminator
      params: {disc_conditional: false, disc_in_channels: 3, disc_start: 0, disc_weight: 0.8}
"""


def _perturbed_model():
    # Initialised under jit (one small program), perturbed on the host: a jitted loop of
    # a hundred random draws took ~40 s to compile on 2 cores.
    m = nnx.jit(lambda: VQGAN(CONFIG, rngs=nnx.Rngs(3)))()
    rng = np.random.default_rng(3)
    # Non-trivial GroupNorm parameters and biases, so a scale/bias mix-up would show.
    for _, var in nnx.to_flat_state(nnx.state(m, nnx.Param)):
        noise = 0.01 * rng.normal(size=var.shape).astype(np.float32)
        var[...] = jax.numpy.asarray(np.asarray(var[...]) + noise)
    return m


@pytest.fixture(scope="module")
def model():
    return _perturbed_model()


def _assert_same_params(a, b):
    fa = dict(nnx.to_flat_state(nnx.state(a, nnx.Param)))
    fb = dict(nnx.to_flat_state(nnx.state(b, nnx.Param)))
    assert fa.keys() == fb.keys()
    for path in fa:
        np.testing.assert_array_equal(fa[path][...], fb[path][...], err_msg=str(path))


def test_chameleon_yaml_reads_as_the_preset():
    assert config_from_taming(yaml.safe_load(CHAMELEON_YAML)) == chameleon_vqgan()


def test_our_encoder_settings_travel_beside_taming_ddconfig():
    """Settings taming has no field for (encode_tile, l2_normalize) live under a top-level
    ``liquid_jax`` key, which taming ignores; a plain config writes none."""
    assert "liquid_jax" not in config_to_taming(CONFIG)
    ours = VQGANConfig(**{**CONFIG.__dict__, "encode_tile": 2})
    written = yaml.safe_load(yaml.safe_dump(config_to_taming(ours)))
    assert written["liquid_jax"]["encode_tile"] == 2
    assert "encode_tile" not in written["model"]["params"]["ddconfig"]
    assert config_from_taming(written) == ours


@pytest.mark.torch
@pytest.mark.parametrize("pick", ["dir", "yaml", "vqgan.ckpt", "vqgan.safetensors"])
def test_save_load_round_trip_is_bit_exact(model, tmp_path, pick):
    pytest.importorskip("torch")
    written = save_vqgan(model, str(tmp_path))
    assert sorted(os.path.basename(p) for p in written) == [
        "vqgan.ckpt", "vqgan.safetensors", "vqgan.yaml",
    ]  # fmt: skip
    target = {"dir": tmp_path, "yaml": tmp_path / "vqgan.yaml"}.get(pick, tmp_path / pick)
    if pick == "vqgan.ckpt":
        os.remove(tmp_path / "vqgan.safetensors")  # a directory would prefer safetensors
    loaded = load_vqgan(str(target))
    assert loaded.config == CONFIG
    _assert_same_params(model, loaded)


def test_safetensors_only_round_trip(model, tmp_path):
    save_vqgan(model, str(tmp_path), formats=("safetensors",))
    assert sorted(os.listdir(tmp_path)) == ["vqgan.safetensors", "vqgan.yaml"]
    _assert_same_params(model, load_vqgan(str(tmp_path)))


@pytest.mark.torch
def test_ckpt_is_taming_state_dict_with_taming_names(model, tmp_path):
    torch = pytest.importorskip("torch")
    save_vqgan(model, str(tmp_path), formats=("ckpt",))
    ckpt = torch.load(tmp_path / "vqgan.ckpt", map_location="cpu", weights_only=True)
    assert list(ckpt) == ["state_dict"]
    shapes = {k: tuple(v.shape) for k, v in ckpt["state_dict"].items()}
    assert shapes == taming_shapes(CONFIG)
    # Spot checks against taming's names and torch layouts (OIHW).
    expected = {
        "encoder.conv_in.weight": (32, 3, 3, 3),
        "encoder.down.0.block.0.norm1.weight": (32,),
        "encoder.down.0.downsample.conv.weight": (32, 32, 3, 3),
        "encoder.down.1.block.0.nin_shortcut.weight": (64, 32, 1, 1),
        "encoder.down.2.attn.0.q.weight": (64, 64, 1, 1),
        "encoder.mid.attn_1.q.weight": (64, 64, 1, 1),
        "encoder.mid.block_2.conv2.bias": (64,),
        "encoder.norm_out.weight": (64,),
        "encoder.conv_out.weight": (16, 64, 3, 3),
        "quant_conv.weight": (8, 16, 1, 1),
        "quantize.embedding.weight": (64, 8),
        "post_quant_conv.weight": (16, 8, 1, 1),
        "decoder.conv_in.weight": (64, 16, 3, 3),
        "decoder.mid.attn_1.proj_out.weight": (64, 64, 1, 1),
        "decoder.up.2.block.1.conv1.weight": (64, 64, 3, 3),
        "decoder.up.2.attn.1.k.weight": (64, 64, 1, 1),
        "decoder.up.2.upsample.conv.weight": (64, 64, 3, 3),
        "decoder.up.0.block.0.nin_shortcut.weight": (32, 64, 1, 1),
        "decoder.conv_out.weight": (3, 32, 3, 3),
    }
    assert {k: shapes[k] for k in expected} == expected
    assert "decoder.up.0.upsample.conv.weight" not in shapes  # no upsample at full size
    kernel = np.asarray(model.encoder.conv_in.kernel[...])
    np.testing.assert_array_equal(
        ckpt["state_dict"]["encoder.conv_in.weight"].numpy(), kernel.transpose(3, 2, 0, 1)
    )
    cfg = yaml.safe_load((tmp_path / "vqgan.yaml").read_text())
    assert cfg["model"]["target"] == "taming.models.vqgan.VQModel"
    assert cfg["model"]["params"]["ddconfig"]["ch_mult"] == [1, 2, 2]
    assert {"embed_dim", "n_embed", "ddconfig", "lossconfig"} <= set(cfg["model"]["params"])


def test_loss_tensors_are_ignored_and_counted(model, caplog):
    sd = vqgan_to_state_dict(model)
    sd["loss.discriminator.main.0.weight"] = np.zeros((64, 3, 4, 4), np.float32)
    sd["loss.perceptual_loss.scaling_layer.shift"] = np.zeros((1, 3, 1, 1), np.float32)
    with caplog.at_level(logging.INFO):
        loaded = vqgan_from_state_dict(sd, CONFIG)
    assert "ignoring 2 loss.* tensors" in caplog.text
    _assert_same_params(model, loaded)


def test_missing_unexpected_and_misshapen_tensors_are_named(model):
    sd = vqgan_to_state_dict(model)
    missing = {k: v for k, v in sd.items() if k != "encoder.mid.attn_1.q.weight"}
    with pytest.raises(ValueError, match=r"1 missing.*encoder\.mid\.attn_1\.q\.weight"):
        vqgan_from_state_dict(missing, CONFIG)
    with pytest.raises(ValueError, match=r"unexpected.*decoder\.extra\.weight"):
        vqgan_from_state_dict({**sd, "decoder.extra.weight": np.zeros(3)}, CONFIG)
    bad = {**sd, "quantize.embedding.weight": np.zeros((32, 8), np.float32)}
    with pytest.raises(ValueError, match=r"'quantize\.embedding\.weight'.*\(32, 8\).*\(64, 8\)"):
        vqgan_from_state_dict(bad, CONFIG)
    # A checkpoint of another architecture fails on its names, not silently.
    with pytest.raises(ValueError, match="missing"):
        vqgan_from_state_dict(sd, chameleon_vqgan())


def test_missing_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_vqgan(str(tmp_path / "nope.ckpt"))
    with pytest.raises(FileNotFoundError, match="no vqgan yaml"):
        load_vqgan(str(tmp_path))


def test_load_onto_a_mesh_replicates(model, tmp_path, cpu_devices):
    save_vqgan(model, str(tmp_path), formats=("safetensors",))
    assert set(read_state_dict(str(tmp_path / "vqgan.safetensors"))) == set(taming_shapes(CONFIG))
    mesh = make_mesh(MeshConfig(data=-1))
    loaded = load_vqgan(str(tmp_path), mesh=mesh)
    kernel = loaded.decoder.conv_out.kernel[...]
    assert kernel.sharding.is_fully_replicated and len(kernel.sharding.device_set) == 8
    _assert_same_params(model, loaded)
