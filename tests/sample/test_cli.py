"""Loading a model directory for sampling and the ``liquid-jax sample`` command."""

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from liquid_jax import fileio
from liquid_jax.data.images import ImageError
from liquid_jax.runs.load import NoModelError, find_vqgan
from liquid_jax.sample.cli_sample import run_sample
from liquid_jax.sample.loading import load_for_sampling


@pytest.fixture(scope="module")
def hf_dir(assets, tmp_path_factory):
    """An HF-format Liquid directory with a VQGAN beside the weights."""
    from liquid_jax.export import save_hf, save_vqgan

    model, layout, _, vqgan, tokenizer_dir = assets
    path = str(tmp_path_factory.mktemp("liquid_hf"))
    save_hf(model, path, tokenizer=tokenizer_dir)
    layout.save(path)
    save_vqgan(vqgan, os.path.join(path, "vqgan"), formats=("safetensors",))
    return path


def test_load_for_sampling_matches_the_in_memory_sampler(hf_dir, sampler):
    loaded = load_for_sampling(hf_dir)
    assert loaded.layout == sampler.layout and loaded.context == sampler.context
    assert loaded.vqgan is not None
    got = loaded.t2i("w1 w2", num_samples=2, grid=(2, 2), seed=1)
    ref = sampler.t2i("w1 w2", num_samples=2, grid=(2, 2), seed=1)
    np.testing.assert_array_equal(got.codes, ref.codes)
    np.testing.assert_array_equal(got.images, ref.images)


def test_no_model_errors(tmp_path, hf_dir):
    with pytest.raises(NoModelError, match="no HF export / checkpoint found"):
        load_for_sampling(str(tmp_path))
    os.makedirs(tmp_path / "checkpoints")  # checkpoints without run_info.json: not a run
    with pytest.raises(NoModelError, match="no HF export / checkpoint found"):
        load_for_sampling(str(tmp_path))
    with pytest.raises(NoModelError, match="not an HF-format Liquid directory"):
        load_for_sampling(hf_dir=str(tmp_path))
    with pytest.raises(FileNotFoundError, match="vqgan: .*missing does not exist"):
        find_vqgan(hf_dir, None, str(tmp_path / "missing"))


def test_run_sample_writes_text_outputs(hf_dir, sampler, tmp_path):
    image = tmp_path / "in.png"
    Image.fromarray(np.full((20, 20, 3), 128, np.uint8)).save(image)
    files = run_sample(
        task="i2t", out=str(tmp_path / "i2t"), image=str(image), sampler=sampler, max_new_tokens=5
    )
    records = [json.loads(line) for line in Path(files[0]).read_text().splitlines()]
    assert records[0]["image"] == str(image) and isinstance(records[0]["output"], str)
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("w1 w2\n\nw3\n")
    files = run_sample(
        task="text",
        out=str(tmp_path / "text"),
        prompt=f"@{prompts}",
        num_samples=2,
        temperature=1.0,
        sampler=sampler,
        max_new_tokens=5,
    )
    records = [json.loads(line) for line in Path(files[0]).read_text().splitlines()]
    assert [r["prompt"] for r in records] == ["w1 w2", "w1 w2", "w3", "w3"]
    assert os.path.getsize(files[1]) > 0


def test_run_sample_checks_input_before_loading(tmp_path):
    with pytest.raises(ImageError, match="no such file"):
        run_sample(task="i2t", out=str(tmp_path), workdir="/nonexistent", image="/no/such.png")
    with pytest.raises(ValueError, match="needs --prompt"):
        run_sample(task="t2i", out=str(tmp_path), workdir="/nonexistent")
    with pytest.raises(FileNotFoundError, match="prompt file"):
        run_sample(task="text", out=str(tmp_path), workdir="/x", prompt="@/no/such.txt")


def test_liquid_jax_sample_command(hf_dir, tmp_path):
    out = tmp_path / "t2i"
    cmd = [
        sys.executable,
        "-c",
        "from liquid_jax.cli import run; run()",
        "sample",
        f"--workdir={hf_dir}",
        "--task=t2i",
        "--prompt=w1 w2 w3",
        "--num_samples=3",
        "--grid=2x3",
        "--cfg=5",
        "--seed=2",
        f"--out={out}",
    ]
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": ""}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    names = sorted(os.listdir(out))
    assert names == [
        "codes.npy",
        "grid.png",
        "sample_000.png",
        "sample_001.png",
        "sample_002.png",
        "samples.jsonl",
    ]
    assert np.load(out / "codes.npy").shape == (3, 2, 3)
    assert Image.open(out / "sample_000.png").size == (12, 8)
    assert "token/s" in proc.stderr


def test_run_sample_reads_prompts_and_writes_outputs_at_a_url(gcs, sampler):
    """``--prompt @gs://...`` and ``--out gs://...``: the same images and codes as the
    sampler returns, stored as objects (the ``gcs`` fixture fails on any local write)."""
    fileio.write_text("gs://bucket/prompts.txt", "w1 w2\nw3\n")
    out = "gs://bucket/samples"
    files = run_sample(task="t2i", out=out, prompt="@gs://bucket/prompts.txt", num_samples=1,
                       grid="2x2", cfg=3.0, seed=4, sampler=sampler)  # fmt: skip
    ref = sampler.t2i(["w1 w2", "w3"], num_samples=1, grid=(2, 2), cfg_scale=3.0, seed=4)
    assert sorted(gcs.ls("/bucket/samples", detail=False)) == sorted(
        f"/bucket/samples/{f.rsplit('/', 1)[1]}" for f in files
    )
    with fileio.open(f"{out}/codes.npy", "rb") as f:
        np.testing.assert_array_equal(np.load(io.BytesIO(f.read())), ref.codes)
    for i, image in enumerate(ref.images):
        png = Image.open(io.BytesIO(fileio.read_bytes(f"{out}/sample_{i:03d}.png")))
        np.testing.assert_array_equal(np.asarray(png), image)
    records = [json.loads(r) for r in fileio.read_text(f"{out}/samples.jsonl").splitlines()]
    assert [r["prompt"] for r in records] == ["w1 w2", "w3"]


def test_i2t_reads_its_image_from_a_url(gcs, sampler):
    buffer = io.BytesIO()
    Image.fromarray(np.full((20, 20, 3), 128, np.uint8)).save(buffer, format="PNG")
    fileio.write_bytes("gs://bucket/in.png", buffer.getvalue())
    files = run_sample(task="i2t", out="gs://bucket/i2t", image="gs://bucket/in.png",
                       sampler=sampler, max_new_tokens=5)  # fmt: skip
    record = json.loads(fileio.read_text(files[0]).splitlines()[0])
    assert record["output"] == sampler.i2t(np.full((1, 20, 20, 3), 128, np.uint8),
                                           max_new_tokens=5)[0]  # fmt: skip
    with pytest.raises(ImageError, match="no such file"):
        run_sample(task="i2t", out="gs://bucket/x", image="gs://bucket/none.png", sampler=sampler)
