"""A workdir at a URL (``--workdir gs://bucket/run``) is written and read back through
etils.epath, not through local file I/O.

``gs://`` is served by an in-memory fsspec filesystem put in place of gcsfs behind epath's
fsspec backend, and it behaves as gcsfs does where it matters: opening an object in
append mode overwrites it. Every test runs in an empty working directory and checks it
stays empty, so a write that went through ``open``/``os.makedirs`` (which would create
``./gs:/bucket/...``) fails the test.
"""

import json
import os

import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest
from ml_collections import ConfigDict

from liquid_jax import fileio
from liquid_jax.data.tokenizers.base import vocab_layout
from liquid_jax.data.tokenizers.hf import train_bpe_tokenizer
from liquid_jax.data.tokenizers.load import load_tokenizer
from liquid_jax.data.tokenizers.sp_train import train_sentencepiece
from liquid_jax.data.vocab import VocabLayout
from liquid_jax.models import TransformerSpec, get_preset
from liquid_jax.runs import checkpoints
from liquid_jax.runs.layout import is_train_workdir
from liquid_jax.runs.trained_model import read_run_info, write_run_info
from liquid_jax.train import checkpoint, metrics
from liquid_jax.train.metrics import MetricWriter
from liquid_jax.train.setup import resolve_tokenizer

RUN = "gs://bucket/run"


def _object(fs, url: str) -> bytes:
    return fs.cat_file(url)


def _corpus() -> list[str]:
    rng = np.random.default_rng(0)
    words = ["a", "red", "blue", "green", "small", "circle", "square", "left", "above"]
    return [" ".join(rng.choice(words, 12)) for _ in range(300)]


def test_absolute_leaves_urls_alone_and_abspaths_local_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert fileio.absolute("gs://b/x") == "gs://b/x"
    assert fileio.absolute("run") == str(tmp_path / "run") == os.path.abspath("run")
    assert fileio.join("gs://b/run", "checkpoints", "7") == "gs://b/run/checkpoints/7"
    assert fileio.is_url("gs://b/x") and not fileio.is_url("/gs/b/x")
    with pytest.raises(ValueError, match="unsupported URL scheme memory://"):
        fileio.exists("memory://b/x")  # epath would read it as the local path ./memory:/


def test_metric_writer_appends_and_truncates_through_the_url(gcs):
    w = MetricWriter(RUN, tensorboard=False)
    for s in (1, 2, 3, 4):
        w.write_scalars(s, {"loss": jnp.float32(s)})
    rows = [json.loads(x) for x in _object(gcs, f"{RUN}/metrics.jsonl").decode().splitlines()]
    assert [(r["step"], r["loss"]) for r in rows] == [(1, 1.0), (2, 2.0), (3, 3.0), (4, 4.0)]
    w = MetricWriter(RUN, resume_step=2, tensorboard=False)  # reads the object back
    w.write_scalars(3, {"loss": 7.0, "val": float("nan")})
    rows = [json.loads(x) for x in _object(gcs, f"{RUN}/metrics.jsonl").decode().splitlines()]
    assert [(r["step"], r["loss"]) for r in rows] == [(1, 1.0), (2, 2.0), (3, 7.0)]
    assert rows[-1]["val"] is None


def test_url_files_refuse_append_mode(gcs):
    fileio.write_text(f"{RUN}/a.txt", "x\n")
    with pytest.raises(ValueError, match="append"):
        fileio.open(f"{RUN}/a.txt", "a")
    fileio.append_text(f"{RUN}/a.txt", "y\n")
    fileio.append_text(f"{RUN}/b.txt", "z\n")
    assert (
        fileio.read_text(f"{RUN}/a.txt") == "x\ny\n" and fileio.read_text(f"{RUN}/b.txt") == "z\n"
    )


def test_tensorboard_is_skipped_with_a_warning_where_tensorboardx_cannot_write(
    gcs, monkeypatch, tmp_path
):
    monkeypatch.setattr(metrics, "TENSORBOARD_URL_MODULES", {"gs": "liquid_jax_no_such_module"})
    logged = []
    monkeypatch.setattr(metrics.logging, "warning", lambda msg, *a: logged.append(msg % a))
    w = MetricWriter(RUN)  # tensorboard=True
    w.write_scalars(1, {"loss": 1.0})
    w.close()
    assert w._tb is None and len(logged) == 1
    assert f"{RUN}/tensorboard" in logged[0] and "liquid_jax_no_such_module" in logged[0]
    assert gcs.exists(f"{RUN}/metrics.jsonl")
    # A local workdir still gets its event files.
    local = MetricWriter(str(tmp_path / "local"))
    local.write_scalars(1, {"loss": 1.0})
    local.close()
    assert local._tb is not None and os.listdir(tmp_path / "local" / "tensorboard")
    assert len(logged) == 1


def test_run_info_round_trips_through_the_url(gcs, tmp_path):
    spec = get_preset("gemma_2b")
    write_run_info(RUN, spec, vqgan="gs://bucket/vqgan_run")
    info = read_run_info(RUN)
    assert info == json.loads(_object(gcs, f"{RUN}/run_info.json"))
    assert TransformerSpec.from_dict(info["spec"]) == spec
    assert info["vqgan"] == "gs://bucket/vqgan_run"
    assert not is_train_workdir(RUN)  # no checkpoints yet
    fileio.write_bytes(f"{RUN}/checkpoints/4/state/x", b"")
    assert is_train_workdir(RUN)
    # Local paths are still made absolute (the relative name is resolved against cwd).
    write_run_info(str(tmp_path), spec, vqgan="vqgan_run")
    assert read_run_info(str(tmp_path))["vqgan"] == os.path.abspath("vqgan_run")


def test_vocab_layout_round_trips_through_the_url(gcs):
    layout = VocabLayout(400, 64, boi_id=3, eoi_id=4, unconditional_id=5, bos_id=2, eos_id=1)
    assert layout.save(RUN) == f"{RUN}/liquid_vocab.json"
    assert VocabLayout.load(RUN) == layout
    assert json.loads(_object(gcs, f"{RUN}/liquid_vocab.json"))["num_image_codes"] == 64
    with pytest.raises(FileNotFoundError, match="gs://bucket/other/liquid_vocab.json"):
        VocabLayout.load("gs://bucket/other")


@pytest.mark.parametrize("kind", ["sentencepiece", "hf"])
def test_tokenizer_saves_and_loads_through_the_url(gcs, tmp_path, kind):
    corpus = _corpus()
    tok = (
        train_sentencepiece(corpus, 300)
        if kind == "sentencepiece"
        else train_bpe_tokenizer(corpus, 300)
    )
    url = f"{RUN}/tokenizer"
    tok.save(url)
    tok.save(str(tmp_path / "local"))
    # The same bytes as a local save, file for file.
    local_files = sorted(os.listdir(tmp_path / "local"))
    assert sorted(fileio.listdir(url)) == local_files and len(local_files) == 3
    for name in local_files:
        assert _object(gcs, f"{url}/{name}") == (tmp_path / "local" / name).read_bytes(), name
    again = load_tokenizer(url)
    assert type(again) is type(tok) and again.vocab_size == tok.vocab_size
    assert vocab_layout(again, 64) == vocab_layout(tok, 64)
    for text in corpus[:20] + ["<boi><eoi> a red circle"]:
        assert again.encode(text) == tok.encode(text)
    if kind == "sentencepiece":
        # The training loop finds a workdir's own tokenizer at the URL.
        config = ConfigDict({"model": {"init_from": ""}, "tokenizer": {"path": ""}})
        resolved = resolve_tokenizer(config, RUN)
        assert resolved.model_proto == tok.model_proto


def test_checkpoint_directory_and_steps_at_a_url(gcs, monkeypatch):
    managers, restored = [], []

    class Manager:
        def __init__(self, directory, **kwargs):
            managers.append(directory)

    class Restorer:
        def restore(self, path, args):
            restored.append(os.fspath(path))
            return {"model": "tree"}

    monkeypatch.setattr(ocp, "CheckpointManager", Manager)
    monkeypatch.setattr(ocp, "PyTreeCheckpointer", Restorer)
    assert checkpoint.Checkpointer(RUN).directory == f"{RUN}/checkpoints"
    assert managers == [f"{RUN}/checkpoints"]
    with pytest.raises(FileNotFoundError, match=f"{RUN}/checkpoints"):
        checkpoints.restore_subtree(RUN, "model", {})
    for name in ("5", "12", "13.orbax-checkpoint-tmp-1"):
        fileio.write_bytes(f"{RUN}/checkpoints/{name}/state/_METADATA", b"{}")
    assert checkpoints.restore_subtree(RUN, "model", {}) == (12, "tree")
    assert restored == [f"{RUN}/checkpoints/12/state"]


def test_local_file_uploads_what_a_filename_writer_wrote(gcs):
    url = f"{RUN}/samples/recon_000004.png"
    with fileio.local_file(url) as local:
        assert not fileio.is_url(local)
        with open(local, "wb") as f:
            f.write(b"png bytes")
    assert _object(gcs, url) == b"png bytes"
    with pytest.raises(RuntimeError), fileio.local_file(f"{RUN}/failed.png") as local:
        with open(local, "wb") as f:
            f.write(b"partial")
        raise RuntimeError("writer failed")
    assert not gcs.exists(f"{RUN}/failed.png")
