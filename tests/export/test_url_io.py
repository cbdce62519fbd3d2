"""``import-hf``, ``export``, ``load_model``, ``load_for_sampling`` and the VQGAN files on
``gs://``: everything goes through ``fileio`` and gives the same arrays as local files.

``gs://`` is served by an in-memory fsspec filesystem put in place of gcsfs behind
etils.epath (the ``gcs`` fixture of tests/conftest.py). Every test runs in an empty
working directory and checks it stays empty, so a URL written through ``open`` /
``os.makedirs`` (which would create ``./gs:/bucket/...``) fails the test.
"""

import json
import os

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from liquid_jax import fileio
from liquid_jax.data.tokenizers.files import TokenizerFiles
from liquid_jax.data.vocab import VocabLayout
from liquid_jax.export import import_hf, load_hf, load_vqgan, save_hf, save_vqgan
from liquid_jax.export.vqgan import read_state_dict, vqgan_to_state_dict
from liquid_jax.models import VQGAN, VQGANConfig
from liquid_jax.runs.export_run import export_run
from liquid_jax.runs.load import load_model
from liquid_jax.sample.loading import load_for_sampling

transformers = pytest.importorskip("transformers")
from tests.tiny import make_hf_model, save_word_tokenizer  # noqa: E402

BUCKET = "gs://bucket"
CODES = 64
VQ_CONFIG = VQGANConfig(
    ch=32, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(), z_channels=8,
    embed_dim=8, n_embed=CODES, resolution=16,
)  # fmt: skip


def _params(model) -> dict:
    return {p: np.asarray(v.get_value()) for p, v in nnx.to_flat_state(nnx.state(model))}


def _assert_same(a, b):
    pa, pb = _params(a), _params(b)
    assert pa.keys() == pb.keys()
    for k in pa:
        assert pa[k].dtype == pb[k].dtype, k
        np.testing.assert_array_equal(pa[k], pb[k], err_msg=str(k))


def _local_files(directory: str) -> dict[str, bytes]:
    out = {}
    for name in os.listdir(directory):
        with open(os.path.join(directory, name), "rb") as f:
            out[name] = f.read()
    return out


def _url_files(directory: str) -> dict[str, bytes]:
    return {n: fileio.read_bytes(fileio.join(directory, n)) for n in fileio.listdir(directory)}


@pytest.fixture(scope="module")
def hf_dirs(tmp_path_factory):
    """Local HF checkpoints: ``gemma`` (tokenizer with ``<unused0..2>``) and ``llama``
    (290-token tokenizer without them, so import-hf adds tokens to the files)."""
    root = tmp_path_factory.mktemp("hf")
    dirs = {}
    for name, variant, size, unused in (("gemma", "gemma", 300, True),
                                        ("llama", "llama_untied", 290, False)):  # fmt: skip
        path = str(root / name)
        make_hf_model(variant).save_pretrained(path)
        save_word_tokenizer(path, size, unused)
        dirs[name] = path
    return dirs


@pytest.fixture(scope="module")
def vqgan_model():
    return nnx.jit(lambda: VQGAN(VQ_CONFIG, rngs=nnx.Rngs(1)))()


@pytest.mark.parametrize("name", ["gemma", "llama"])
def test_import_hf_to_a_bucket_equals_a_local_import(gcs, hf_dirs, tmp_path, name):
    local, url = str(tmp_path / "local"), f"{BUCKET}/{name}"
    layout = import_hf(hf_dirs[name], local, image_codes=CODES)
    assert import_hf(hf_dirs[name], url, image_codes=CODES) == layout
    assert VocabLayout.load(url) == layout
    # Same files, byte for byte (config, tokenizer files with any added tokens, weights).
    assert _url_files(url) == _local_files(local)
    _assert_same(load_hf(url), load_hf(local))
    ids = TokenizerFiles(url)
    specials = [ids.get(t) for t in ("<boi>", "<eoi>", "<unconditional>")]
    assert specials == ([None] * 3 if name == "gemma" else [290, 291, 292])


def test_import_hf_from_a_bucket(gcs, hf_dirs, tmp_path):
    src = f"{BUCKET}/src"
    for name, data in _local_files(hf_dirs["llama"]).items():
        fileio.write_bytes(fileio.join(src, name), data)
    local, ref = str(tmp_path / "local"), str(tmp_path / "ref")
    layout = import_hf(hf_dirs["llama"], ref, image_codes=CODES)
    assert import_hf(src, local, image_codes=CODES) == layout
    assert _local_files(local) == _local_files(ref)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_save_hf_to_a_bucket_sharded_then_single(gcs, hf_dirs, dtype):
    model = load_hf(hf_dirs["gemma"], dtype=dtype)
    url = f"{BUCKET}/saved"
    save_hf(model, url, max_shard_bytes=100_000)
    names = set(fileio.listdir(url))
    shards = [n for n in names if n.startswith("model-") and n.endswith(".safetensors")]
    assert "model.safetensors.index.json" in names and len(shards) > 1
    _assert_same(load_hf(url, dtype=dtype), model)
    # A second save into the same prefix removes the first one's shards and index.
    save_hf(model, url)
    assert sorted(fileio.listdir(url)) == [
        "config.json",
        "generation_config.json",
        "model.safetensors",
    ]
    _assert_same(load_hf(url, dtype=dtype), model)


def test_save_hf_saves_a_tokenizer_object_to_a_bucket(gcs, hf_dirs):
    tok = transformers.AutoTokenizer.from_pretrained(hf_dirs["gemma"])
    url = f"{BUCKET}/with_tok"
    save_hf(load_hf(hf_dirs["gemma"]), url, tokenizer=tok)
    assert TokenizerFiles(url).get("<unused1>") == 8


def test_vqgan_safetensors_round_trip_through_a_bucket(gcs, vqgan_model):
    url = f"{BUCKET}/vqgan"
    written = save_vqgan(vqgan_model, url, formats=("safetensors",))
    assert written == [f"{url}/vqgan.yaml", f"{url}/vqgan.safetensors"]
    expected = vqgan_to_state_dict(vqgan_model)
    got = read_state_dict(f"{url}/vqgan.safetensors")
    assert got.keys() == expected.keys()
    for k in expected:
        np.testing.assert_array_equal(got[k], expected[k], err_msg=k)
    for path in (url, f"{url}/vqgan.yaml", f"{url}/vqgan.safetensors"):
        _assert_same(load_vqgan(path), vqgan_model)


def test_vqgan_ckpt_round_trip_through_a_bucket(gcs, vqgan_model):
    pytest.importorskip("torch")
    url = f"{BUCKET}/vqgan_ckpt"
    save_vqgan(vqgan_model, url, formats=("ckpt",))
    _assert_same(load_vqgan(f"{url}/vqgan.ckpt"), vqgan_model)


def test_load_model_export_run_and_sampling_from_a_bucket(gcs, hf_dirs, vqgan_model, tmp_path):
    liquid = f"{BUCKET}/liquid"
    layout = import_hf(hf_dirs["gemma"], liquid, image_codes=CODES)
    save_vqgan(vqgan_model, f"{liquid}/vqgan", formats=("safetensors",))
    reference = load_hf(hf_dirs["gemma"])  # text rows as imported

    loaded = load_model(liquid)
    assert loaded.source == liquid and loaded.vqgan == f"{liquid}/vqgan"
    assert loaded.layout == layout and loaded.tokenizer.boi_id == layout.boi_id == 7
    text = np.asarray(loaded.model.embed_tokens.embedding[...])[:300]
    np.testing.assert_array_equal(text, np.asarray(reference.embed_tokens.embedding[...])[:300])

    out = f"{BUCKET}/exported"
    assert export_run(liquid, out) == out
    assert VocabLayout.load(out) == layout
    _assert_same(load_hf(out), loaded.model)
    assert json.loads(fileio.read_text(f"{out}/config.json"))["vocab_size"] == 300 + CODES

    sampler = load_for_sampling(liquid)
    assert sampler.layout == layout
    assert sampler.tokenizer.unconditional_id == layout.unconditional_id
    _assert_same(sampler.vqgan, vqgan_model)
