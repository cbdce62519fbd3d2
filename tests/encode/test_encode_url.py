"""encode-images with its source and workdir on ``gs://`` (the in-memory bucket of the
``gcs`` fixture): the same code records and counts as a local run, and a rerun resumes."""

import os

import numpy as np
from flax import nnx
from PIL import Image

from configs.encode_shapes import get_config
from liquid_jax import fileio
from liquid_jax.data.shapes.world import generate_images
from liquid_jax.data.sources.code_records import CodeRecordSource
from liquid_jax.encode.chunks import MANIFEST_FILE
from liquid_jax.encode.images import extract_codes
from liquid_jax.export.vqgan import save_vqgan
from liquid_jax.models.vqgan import VQGAN, VQGANConfig
from tests.tiny import VQGAN_FIELDS as TINY

SIZE = 16
TIMING = ("seconds_this_run", "images_per_s", "source", "skip_examples")


def _config(vqgan: str, source: str):
    c = get_config("runlocal")
    c.source, c.splits, c.vqgan.path = source, "train", vqgan
    c.update(image_size=SIZE, batch_size=8, records_per_chunk=8, num_threads=2)
    return c


def _records(source):
    return [source[i] for i in range(len(source))]


def test_encode_images_reads_and_writes_gs(gcs, tmp_path):
    save_vqgan(VQGAN(VQGANConfig(resolution=SIZE, **TINY), rngs=nnx.Rngs(0)),
               str(tmp_path / "vqgan"), formats=("safetensors",))  # fmt: skip
    images = tmp_path / "images"
    os.makedirs(images)
    for i, pixels in enumerate(generate_images(11, 24, seed=5)):
        Image.fromarray(pixels).resize((24, 20 + i)).save(images / f"im{i:02d}.png")
        if i != 4:  # one image without its caption: skipped on both sides
            (images / f"im{i:02d}.txt").write_text(f"shape {i}")
        fileio.copy(str(images / f"im{i:02d}.png"), f"gs://bucket/images/im{i:02d}.png")
        if i != 4:
            fileio.copy(str(images / f"im{i:02d}.txt"), f"gs://bucket/images/im{i:02d}.txt")
    vqgan = str(tmp_path / "vqgan")
    local = extract_codes(_config(vqgan, f"folder:{images}"), str(tmp_path / "run"))
    url = extract_codes(_config(vqgan, "folder:gs://bucket/images"), "gs://bucket/run")
    drop = lambda m: {k: v for k, v in m.items() if k not in TIMING}
    assert drop(url["train"]) == drop(local["train"])
    assert url["train"]["encoded"] == 10 and url["train"]["skips"] == {"missing_caption": 1}
    assert "gs://bucket/images/im04.txt" in url["train"]["skip_examples"]["missing_caption"][0]
    assert fileio.exists("gs://bucket/run/encode_summary.json")
    assert fileio.exists(f"gs://bucket/run/codes/train/{MANIFEST_FILE}")
    assert not [n for n in fileio.listdir("gs://bucket/run/codes/train") if "partial" in n]
    want = _records(CodeRecordSource(str(tmp_path / "run" / "codes" / "train")))
    got = _records(CodeRecordSource("gs://bucket/run/codes/train", cache=str(tmp_path / "c")))
    assert len(got) == len(want) == 10
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g["codes"], w["codes"])
        assert g["source_id"] == w["source_id"] and g["caption"] == w["caption"]
    again = extract_codes(_config(vqgan, "folder:gs://bucket/images"), "gs://bucket/run")
    assert again["train"]["chunks_this_run"] == 0 and again["train"]["encoded"] == 10
