"""encode-images: killed and resumed equals a straight run, codes equal VQGAN.encode,
bad records counted by reason, train-vqgan workdirs and the shapes world as inputs."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
from flax import nnx
from PIL import Image

from configs.encode_shapes import get_config
from liquid_jax.data.images import load_image, make_buckets
from liquid_jax.data.shapes.world import generate_images
from liquid_jax.data.skips import TooManySkipsError
from liquid_jax.data.sources.code_records import CodeRecordSource
from liquid_jax.encode.images import extract_codes, load_vqgan_from_workdir
from liquid_jax.encode.preprocess import Preprocess
from liquid_jax.export.vqgan import load_vqgan, save_vqgan
from liquid_jax.models.vqgan import VQGAN, VQGANConfig
from tests.tiny import VQGAN_FIELDS as TINY

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SIZE = 16  # pixels; an 8x8 code grid
NUM_GOOD, BAD_AT = 40, {5: "missing", 17: "not_an_image"}
OVERRIDES = dict(image_size=SIZE, batch_size=8, records_per_chunk=8, num_threads=2)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A tiny random VQGAN on disk and a jsonl of 40 good images + 2 bad records."""
    root = tmp_path_factory.mktemp("encode")
    model = VQGAN(VQGANConfig(resolution=SIZE, **TINY), rngs=nnx.Rngs(0))
    save_vqgan(model, str(root / "vqgan"), formats=("safetensors",))
    images = generate_images(NUM_GOOD, 32, seed=3)
    sizes = [(32, 32), (24, 20), (20, 30), (40, 24)]  # every crop path; ratios <= 2
    lines, good = [], []
    for i in range(NUM_GOOD):
        while len(lines) in BAD_AT:
            kind = BAD_AT[len(lines)]
            if kind == "not_an_image":
                (root / "notes.png").write_text("not an image")
            lines.append({"image_path": "gone.png" if kind == "missing" else "notes.png",
                          "text": kind})  # fmt: skip
        path = str(root / f"img{i:02d}.png")
        Image.fromarray(images[i]).resize(sizes[i % len(sizes)]).save(path)
        lines.append({"image_path": os.path.basename(path), "text": f"shape number {i}"})
        good.append(path)
    with open(root / "train.jsonl", "w") as f:
        f.writelines(json.dumps(line) + "\n" for line in lines)
    return {"root": root, "vqgan": str(root / "vqgan"), "jsonl": str(root / "train.jsonl"),
            "good": good}  # fmt: skip


def _config(data, **overrides):
    c = get_config("runlocal")
    c.source = f"jsonl:{data['jsonl']}"
    c.splits = "train"
    c.vqgan.path = data["vqgan"]
    c.update({**OVERRIDES, **overrides})
    return c


def _records(workdir, split="train"):
    source = CodeRecordSource(os.path.join(workdir, "codes", split))
    return [source[i] for i in range(len(source))]


def _assert_same_records(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x["codes"], y["codes"])
        assert {k: v for k, v in x.items() if k != "codes"} == {
            k: v for k, v in y.items() if k != "codes"
        }


_CHILD = """
import os, sys, time
import jax
jax.config.update("jax_compilation_cache_dir", sys.argv[1])
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
from liquid_jax.data.sources import code_records
write = code_records.CodeRecordWriter.write
def slow_write(self, record):  # slow enough for the parent to kill it mid-chunk
    write(self, record)
    time.sleep(0.15)
code_records.CodeRecordWriter.write = slow_write
from liquid_jax.cli import run
run(["liquid-jax", "encode-images", *sys.argv[2:]])
"""


def test_killed_run_resumes_to_the_straight_result(data, tmp_path):
    straight = str(tmp_path / "straight")
    summary = extract_codes(_config(data), straight)["train"]
    want = _records(straight)

    # Bad records: skipped, counted by reason, named in the summary.
    assert summary["encoded"] == NUM_GOOD and summary["skipped"] == 2
    assert summary["skips"] == {"missing_file": 1, "bad_image": 1}
    assert any("gone.png" in e for e in summary["skip_examples"]["missing_file"])
    assert summary["chunks"] == 6 and summary["images_per_s"] > 0
    with open(os.path.join(straight, "encode_summary.json")) as f:
        assert json.load(f)["train"] == summary
    assert [r["caption"] for r in want] == [f"shape number {i}" for i in range(NUM_GOOD)]
    assert (want[1]["orig_w"], want[1]["orig_h"]) == (24, 20)
    assert all((r["grid_h"], r["grid_w"]) == (8, 8) for r in want)

    # The codes are VQGAN.encode of the pre-processed images.
    model = load_vqgan(data["vqgan"])
    images = np.stack([load_image(p, SIZE) for p in data["good"]])
    codes = np.asarray(jax.jit(lambda x: model.encode(x))(images))
    np.testing.assert_array_equal(np.stack([r["codes"] for r in want]), codes.reshape(NUM_GOOD, -1))

    # Killed (SIGKILL) in the middle of the second chunk, then restarted.
    killed = tmp_path / "killed"
    out = killed / "codes" / "train"
    cmd = [sys.executable, "-c", _CHILD, jax.config.jax_compilation_cache_dir or "",
           f"--config={ROOT}/configs/encode_shapes.py:runlocal", f"--workdir={killed}",
           f"--config.source=jsonl:{data['jsonl']}", "--config.splits=train",
           f"--config.vqgan.path={data['vqgan']}",
           *[f"--config.{k}={v}" for k, v in OVERRIDES.items()]]  # fmt: skip
    env = {**os.environ, "JAX_PLATFORMS": "cpu",
           "XLA_FLAGS": "--xla_force_host_platform_device_count=8"}  # fmt: skip
    log = tmp_path / "child.log"
    with open(log, "w") as f:  # a file, not a pipe, which could fill up and stall the child
        child = subprocess.Popen(cmd, env=env, cwd=ROOT, stderr=f)
    deadline = time.monotonic() + 90
    try:
        while time.monotonic() < deadline and child.poll() is None:
            names = os.listdir(out) if out.is_dir() else []
            if "chunk000000-host000of001.done.json" in names and any(
                n.startswith("chunk000001") and n.endswith(".partial") for n in names
            ):
                break
            time.sleep(0.02)
        assert child.poll() is None, (
            f"finished or failed before the kill:\n{log.read_text()[-3000:]}"
        )
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    names = sorted(os.listdir(out))
    assert "chunk000000-host000of001-00000-of-00001.array_record" in names
    assert any(n.endswith(".partial") for n in names) and "manifest.json" not in names

    resumed = extract_codes(_config(data), str(killed))["train"]
    assert resumed["chunks_this_run"] == 5  # chunk 0 was kept
    assert not [n for n in os.listdir(out) if n.endswith(".partial")]
    _assert_same_records(_records(str(killed)), want)
    keep = ("encoded", "skipped", "skips", "grids", "chunks")
    assert {k: resumed[k] for k in keep} == {k: summary[k] for k in keep}

    # A finished folder reruns as a no-op; other settings are refused.
    again = extract_codes(_config(data), str(killed))["train"]
    assert again["chunks_this_run"] == 0 and again["encoded"] == NUM_GOOD
    with pytest.raises(ValueError, match="records_per_chunk"):
        extract_codes(_config(data, records_per_chunk=16), str(killed))


_HOST = """
import sys
import jax
jax.distributed.initialize(sys.argv[1], 2, int(sys.argv[2]))
from configs.encode_shapes import get_config
from liquid_jax.encode.images import extract_codes
c = get_config("runlocal")
c.update(dict(source="jsonl:" + sys.argv[3], splits="train", image_size=16, batch_size=8,
              records_per_chunk=8, num_threads=2))
c.vqgan.path = sys.argv[4]
extract_codes(c, sys.argv[5])
"""


def _two_hosts(data, workdir):
    with socket.socket() as s:
        s.bind(("localhost", 0))
        address = f"localhost:{s.getsockname()[1]}"
    env = {**os.environ, "JAX_PLATFORMS": "cpu",
           "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}  # fmt: skip
    os.makedirs(workdir, exist_ok=True)
    logs = [os.path.join(workdir, f"host{i}.log") for i in range(2)]
    procs = []
    for i, log in enumerate(logs):
        with open(log, "w") as f:  # a file, not a pipe: a full pipe would stall the host
            argv = [sys.executable, "-c", _HOST, address, str(i), data["jsonl"], data["vqgan"]]
            procs.append(subprocess.Popen([*argv, workdir], env=env, cwd=ROOT, stderr=f))
    try:
        for p in procs:
            p.wait(timeout=120)
    finally:
        for p in procs:  # one host failing leaves the other waiting in a collective
            p.kill()
            p.wait()
    for p, log in zip(procs, logs):
        with open(log) as f:
            assert p.returncode == 0, f.read()[-3000:]
    with open(os.path.join(workdir, "encode_summary.json")) as f:
        return json.load(f)["train"]


def test_two_hosts_split_records_and_agree_on_resume(data, tmp_path):
    """Two processes (4 devices): host p takes records i % 2 == p of each chunk; a chunk
    one host finished and the other did not is redone by both."""
    one = extract_codes(_config(data), str(tmp_path / "one"))["train"]
    want = {r["source_id"]: r for r in _records(str(tmp_path / "one"))}
    workdir = str(tmp_path / "two")
    two = _two_hosts(data, workdir)
    assert (two["encoded"], two["skips"], two["hosts"]) == (one["encoded"], one["skips"], 2)
    got = _records(workdir)
    assert [r["caption"] for r in got[:4]] == [f"shape number {i}" for i in (0, 2, 4, 5)]
    assert sorted(r["source_id"] for r in got) == sorted(want)
    for r in got:
        np.testing.assert_array_equal(r["codes"], want[r["source_id"]]["codes"])

    os.remove(os.path.join(workdir, "codes", "train", "chunk000002-host001of002.done.json"))
    again = _two_hosts(data, workdir)
    assert again["chunks_this_run"] == 1 and again["encoded"] == one["encoded"]
    _assert_same_records(_records(workdir), got)


def test_too_many_bad_records_raise(data, tmp_path):
    config = _config(data)
    config.skips.max_fraction, config.skips.min_seen = 0.01, 8
    with pytest.raises(TooManySkipsError, match="missing_file"):
        extract_codes(config, str(tmp_path))


@pytest.mark.parametrize("encode_tile", [0, 1])
def test_shapes_world_splits_from_a_train_vqgan_workdir(tmp_path, encode_tile):
    """encode_tile 1: each distinct tile of a chunk is encoded once; the same codes."""
    from liquid_jax.train.checkpoint import Checkpointer
    from liquid_jax.train.vqgan_step import VQGANTrainState, make_optimizer

    # A train-vqgan checkpoint: the whole VQGANTrainState, as vqgan_loop saves it.
    tiny = dict(TINY, encode_tile=encode_tile)
    vq = VQGANConfig(resolution=SIZE, **tiny)
    state = VQGANTrainState(VQGAN(vq, rngs=nnx.Rngs(1)), make_optimizer(1e-3), None,
                            make_optimizer(1e-3), vq.n_embed)  # fmt: skip
    ckpt = Checkpointer(str(tmp_path / "vq"))
    ckpt.save(7, nnx.state(state), data_state={"step": 7}, force=True)
    ckpt.close()
    model = load_vqgan_from_workdir(str(tmp_path / "vq"), dict(tiny, resolution=SIZE))
    x = np.random.default_rng(0).uniform(-1, 1, (2, SIZE, SIZE, 3)).astype(np.float32)
    np.testing.assert_array_equal(model.encode(x), state.model.encode(x))
    with pytest.raises(ValueError, match=r"quantize.embedding \(64, 16\) != \(128, 16\)"):
        load_vqgan_from_workdir(str(tmp_path / "vq"), dict(tiny, resolution=SIZE, n_embed=128))

    c = get_config("runlocal")
    c.update(OVERRIDES)
    c.vqgan.workdir = str(tmp_path / "vq")
    c.vqgan.model = dict(tiny, resolution=SIZE)
    sw = c.shapes_world
    sw.num_train, sw.num_val, sw.num_test, sw.image_size = 10, 3, 0, SIZE
    summary = extract_codes(c, str(tmp_path / "codes"))
    assert sorted(summary) == ["train", "validation"]  # the empty test split is left out
    assert summary["train"]["vqgan"]["step"] == 7
    train = _records(str(tmp_path / "codes"))
    assert len(train) == 10 and summary["validation"]["encoded"] == 3
    assert train[3]["source_id"].endswith("[train]:3") and train[3]["caption"]
    images = generate_images(10, SIZE, seed=0, split="train").astype(np.float32) / 127.5 - 1
    want = np.asarray(model.encode(images)).reshape(10, -1)
    got = np.stack([r["codes"] for r in train])
    # Encoded in other batches, a near-tied latent can round to its other code on some
    # CPUs (1 of 640 seen); a wrong record or tile order changes most codes.
    assert got.shape == want.shape and (got != want).mean() <= 1 / 200, (got != want).sum()


def test_bucketed_preprocessing_picks_sizes_by_aspect_ratio():
    pre = Preprocess(16, make_buckets(16 * 16, 4, 2.0))
    assert pre.target(100, 100) == (16, 16)
    w, h = pre.target(200, 100)
    assert w > h and w % 4 == 0 and h % 4 == 0
    assert (h, w) in pre.shapes() and len(pre.shapes()) == len(set(pre.shapes()))
    assert Preprocess(16).shapes() == [(16, 16)]
