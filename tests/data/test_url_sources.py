"""Data sources on ``gs://``: ``jsonl:`` / ``txt:`` text, ``codes:`` shards and ``folder:``
images give exactly the records (and pipeline batches) of the same files on local disk.

``gs://`` is the in-memory bucket of the ``gcs`` fixture (tests/conftest.py), which also
fails a test that writes a URL as a local path.
"""

import concurrent.futures
import json
import os
import pickle

import numpy as np
import pytest
from PIL import Image

from liquid_jax import fileio
from liquid_jax.data.pipeline.dataset import make_iterator, shapes_config
from liquid_jax.data.shapes.world import generate_images
from liquid_jax.data.skips import BadRecord
from liquid_jax.data.sources import remote_shards
from liquid_jax.data.sources.code_records import CodeRecordSource, CodeRecordWriter
from liquid_jax.data.sources.files import RecordIndex
from liquid_jax.data.sources.shapes import ShapesCodeSource
from liquid_jax.data.sources.specs import open_image_text_source, open_text_source
from liquid_jax.data.tokenizers.load import load_tokenizer
from liquid_jax.errors import ConfigError, InputError, PathNotFoundError

BUCKET = "gs://bucket"


@pytest.fixture(scope="module")
def tokenizer(sp_dir):
    return load_tokenizer(sp_dir)


def _upload(local_dir, url_dir):
    """Copies every file under ``local_dir`` to the same relative names under ``url_dir``."""
    for root, _, names in os.walk(local_dir):
        for name in names:
            rel = os.path.relpath(os.path.join(root, name), local_dir).replace(os.sep, "/")
            fileio.copy(os.path.join(root, name), f"{url_dir}/{rel}")


def _batches(tokenizer, n=4, **sources):
    cfg = shapes_config(seq_len=128, batch_size=4, num_packing_bins=4, read_threads=0,
                        num_image_codes=ShapesCodeSource(1).num_codes, **sources)  # fmt: skip
    it = make_iterator(cfg, tokenizer, process_index=0, process_count=1)
    return [next(it) for _ in range(n)]


def _assert_batches_equal(got, want):
    assert len(got) == len(want)
    for a, b in zip(got, want):
        assert sorted(a) == sorted(b)
        for key in b:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def _text_files(root):
    """Two jsonl files (one with a bad line) and a plain text file with paragraphs."""
    os.makedirs(root / "text")
    for part in range(2):
        lines = [json.dumps({"text": f"a red circle number {part}-{i} ünï"}) for i in range(30)]
        lines.insert(7, "{not json")
        (root / "text" / f"part{part}.jsonl").write_text("\n".join(lines) + "\n")
    paragraphs = [f"line one of {i}\r\nline two of {i}" for i in range(12)]
    (root / "text" / "book.txt").write_text("\n\n\n".join(paragraphs), newline="")


def _records(source):
    out = []
    for i in range(len(source)):
        try:
            out.append(source[i])
        except BadRecord as e:
            out.append(("bad", e.reason))
    return out


def test_text_sources_on_gs_equal_local(gcs, tmp_path, tokenizer):
    _text_files(tmp_path)
    _upload(tmp_path / "text", f"{BUCKET}/text")
    local, url = str(tmp_path / "text"), f"{BUCKET}/text"
    for spec in ("jsonl:{}/*.jsonl", "txt:{}/book.txt", "txt:{}/book.txt?unit=line"):
        want = _records(open_text_source(spec.format(local)))
        got = _records(open_text_source(spec.format(url)))
        # Record ids name the file: equal once the folder is swapped.
        for g, w in zip(got, want):
            if isinstance(w, dict):
                assert g["id"] == w["id"].replace(local, url)
                g["id"] = w["id"]
        assert got == want, spec
    text_only = dict(text_weight=1.0, image_text_weight=0.0)
    _assert_batches_equal(
        _batches(tokenizer, text_sources=(f"jsonl:{url}/part*.jsonl",), **text_only),
        _batches(tokenizer, text_sources=(f"jsonl:{local}/part*.jsonl",), **text_only),
    )


def test_range_reader_blocks_equal_the_bytes(gcs, tmp_path):
    data = bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8))
    fileio.write_bytes(f"{BUCKET}/blob", data)
    reader = fileio.RangeReader(f"{BUCKET}/blob", block_size=512, max_blocks=2)
    for start, size in ((0, 10), (500, 30), (1000, 1700), (4990, 100), (0, 5000), (77, 0)):
        assert reader.read(start, size) == data[start : start + size], (start, size)
    assert len(reader._blocks) <= 2
    ranges = [(int(a), int(b)) for a, b in np.random.default_rng(1).integers(0, 5000, (200, 2))]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:  # as Grain's read threads do
        got = list(pool.map(lambda r: reader.read(r[0], r[1] // 8), ranges))
    assert got == [data[a : a + b // 8] for a, b in ranges]
    again = pickle.loads(pickle.dumps(reader))  # for Grain worker processes
    assert again.read(4000, 50) == data[4000:4050] and len(again._blocks) == 1
    lines = b"".join(b"%d\n" % i for i in range(3000))
    fileio.write_bytes(f"{BUCKET}/lines.txt", lines)
    index = RecordIndex([f"{BUCKET}/lines.txt"], "line")
    assert [index.read(i) for i in (0, 2999, 1234)] == [b"0", b"2999", b"1234"]


def _code_shards(directory, n=40):
    shapes = ShapesCodeSource(n)
    with CodeRecordWriter(directory, records_per_shard=16) as writer:
        for i in range(n):
            writer.write({k: shapes[i][k] for k in shapes[i] if k != "image"})


def test_codes_on_gs_equal_local(gcs, tmp_path, tokenizer):
    local, url = str(tmp_path / "codes"), f"{BUCKET}/codes"
    _code_shards(local)
    _code_shards(url)  # the writer uploads its shards to the bucket
    assert sorted(fileio.listdir(url)) == sorted(os.listdir(local))
    cache = str(tmp_path / "cache")
    want, got = CodeRecordSource(local), CodeRecordSource(url, cache=cache)
    assert len(got) == len(want) == 40
    for i in (0, 17, 39):
        np.testing.assert_array_equal(got[i]["codes"], want[i]["codes"])
        assert got[i]["caption"] == want[i]["caption"]
    text = dict(text_sources=("shapes_text:50",))
    _assert_batches_equal(
        _batches(tokenizer, image_text_sources=(f"codes:{url}?cache={cache}",), **text),
        _batches(tokenizer, image_text_sources=(f"codes:{local}",), **text),
    )
    copies = []
    real_copy = fileio.copy
    gcs_copy = lambda src, dst: (copies.append(src), real_copy(src, dst))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(remote_shards.fileio, "copy", gcs_copy)
        assert len(CodeRecordSource(url, cache=cache)) == 40
        assert copies == []  # the copies are reused
        os.remove(got._source._paths[0])
        CodeRecordSource(url, cache=cache)
        assert copies == [f"{url}/codes-00000-of-00003.array_record"]


def test_codes_url_without_cache_needs_a_readable_bucket(gcs, tmp_path, monkeypatch):
    url = f"{BUCKET}/codes"
    _code_shards(url, n=4)

    class UnreadableBucket:  # what array_record's reader reports without credentials
        def __init__(self, path):
            self.path = path

        def ok(self):
            return False

    monkeypatch.setattr(remote_shards, "ArrayRecordReader", UnreadableBucket)
    with pytest.raises(InputError, match=r"codes-00000-of-00001\.array_record.*\?cache=DIR"):
        CodeRecordSource(url)
    with pytest.raises(ConfigError, match=r"s3://b/c/x\.array_record: .*\?cache=DIR"):
        remote_shards.readable_shards(["s3://b/c/x.array_record"])
    local = str(tmp_path / "x.array_record")
    assert remote_shards.readable_shards([local]) == [local]


def test_missing_sources_on_gs_are_named(gcs):
    for spec, message in (
        ("jsonl:gs://bucket/none/*.jsonl", "gs://bucket/none/\\*.jsonl: the pattern matches no"),
        ("txt:gs://bucket/none.txt", "gs://bucket/none.txt: no such file"),
        ("tfds:gs://bucket/ds/1.0.0", "gs://bucket/ds/1.0.0: no dataset_info.json"),
    ):
        with pytest.raises(PathNotFoundError, match=message):
            open_text_source(spec)
    with pytest.raises(PathNotFoundError, match="gs://bucket/imgs: no such image folder"):
        open_image_text_source("folder:gs://bucket/imgs")
    with pytest.raises(PathNotFoundError, match="gs://bucket/codes: no such code-record folder"):
        CodeRecordSource("gs://bucket/codes")


def _image_folder(root, layout):
    """Six images (one 4x4: too small) with captions in ``layout``."""
    os.makedirs(root / "sub")
    images = generate_images(6, 24, seed=1)
    rows = []
    for i, pixels in enumerate(images):
        rel = f"sub/im{i}.png" if i % 2 else f"im{i}.png"
        img = Image.fromarray(pixels)
        (img.resize((4, 4)) if i == 3 else img).save(root / rel)
        rows.append({"file": rel, "text": f"picture {i}"})
        if layout == "sidecar":
            (root / rel).with_suffix(".txt").write_text(f"picture\r\n{i}" if i != 4 else "")
    if layout == "captions.jsonl":
        (root / "captions.jsonl").write_text("\n".join(map(json.dumps, rows)) + "\n")
    elif layout == "captions.csv":
        text = "file,text\n" + "".join(f"{r['file']},{r['text']}\n" for r in rows)
        (root / "captions.csv").write_text(text)


@pytest.mark.parametrize("layout", ["sidecar", "captions.jsonl", "captions.csv"])
def test_image_folder_on_gs_equals_local(gcs, tmp_path, layout):
    _image_folder(tmp_path / "images", layout)
    local, url = str(tmp_path / "images"), f"{BUCKET}/images"
    _upload(local, url)
    for options in ("", "?decode=false"):
        want = _records(open_image_text_source(f"folder:{local}{options}"))
        got = _records(open_image_text_source(f"folder:{url}{options}"))
        assert len(got) == len(want) == 6
        assert ("bad", "too_small") in got
        for g, w in zip(got, want):
            if isinstance(w, tuple):
                assert g == w
                continue
            assert g["image_path"] == w["image_path"].replace(local, url)
            assert {k: v for k, v in g.items() if k not in ("image", "image_path")} == {
                k: v for k, v in w.items() if k not in ("image", "image_path")
            }
            if "image" in w:
                np.testing.assert_array_equal(g["image"], w["image"])


def test_url_glob_matches_local_glob(gcs, tmp_path):
    _image_folder(tmp_path / "images", "sidecar")
    os.makedirs(tmp_path / "images" / "sub" / "deep")
    (tmp_path / "images" / "sub" / "deep" / "x.png").write_bytes(b"x")
    (tmp_path / "images" / ".hidden.png").write_bytes(b"x")
    os.makedirs(tmp_path / "images" / ".cache")
    (tmp_path / "images" / ".cache" / "y.png").write_bytes(b"x")
    local, url = str(tmp_path / "images"), f"{BUCKET}/images"
    _upload(local, url)
    for pattern in ("**/*", "**/*.png", "sub/**/*.png", "*/*.txt", "im?.png", "[is]*"):
        want = [p.replace(local, url) for p in fileio.glob(f"{local}/{pattern}")]
        assert fileio.glob(f"{url}/{pattern}") == want, pattern
        assert want, pattern
