"""Sources on disk: records, bad records skipped with counted reasons, thresholds, specs."""

import json
import os
import pickle

import numpy as np
import pytest
from PIL import Image

from liquid_jax.data.shapes.world import build_shapes_world
from liquid_jax.data.skips import BadRecord, SkipCounter, SkipPolicy, TooManySkipsError
from liquid_jax.data.sources.images import ImageFolderSource, ImageTextJsonlSource
from liquid_jax.data.sources.shapes import ShapesCodeSource, stand_in_codes
from liquid_jax.data.sources.specs import (
    ConcatSource,
    iterate_valid,
    open_code_source,
    open_image_text_source,
    open_text_source,
    parse_spec,
)
from liquid_jax.data.sources.text import PlainTextSource, TextJsonlSource
from liquid_jax.data.sources.tfds import TfdsSource


def _png(path, width, height, color=(200, 30, 30)):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.new("RGB", (width, height), color).save(path)


def _jsonl(path, lines):
    with open(path, "w") as f:
        for line in lines:
            f.write((line if isinstance(line, str) else json.dumps(line)) + "\n")


@pytest.fixture
def liquid_jsonl(tmp_path):
    """Liquid's jsonl with 3 good records and one of each kind of bad record."""
    root = tmp_path / "data"
    _png(str(root / "img" / "a.png"), 32, 32)
    _png(str(root / "img" / "b.png"), 48, 32)  # ratio 1.5: kept
    _png(str(root / "wide.png"), 80, 32)  # ratio 2.5: dropped
    _png(str(tmp_path / "abs.png"), 16, 16)
    (root / "corrupt.png").write_bytes(b"\x89PNG not really")
    _jsonl(
        root / "train.jsonl",
        [
            {"image_path": "img/a.png", "text": "a red square"},
            {"image_path": "img/b.png", "text": "  wide-ish  "},
            {"image_path": str(tmp_path / "abs.png"), "text": "absolute path"},
            {"image_path": "wide.png", "text": "too wide"},
            {"image_path": "corrupt.png", "text": "broken"},
            {"image_path": "img/missing.png", "text": "gone"},
            {"image_path": "img/a.png", "text": "   "},
            '{"image_path": "img/a.png", "text": ',  # truncated JSON
            "[1, 2]",
            {"text": "no image key"},
            "",  # blank lines are not records
        ],
    )
    return root / "train.jsonl"


BAD = {
    "aspect_ratio": 1,
    "bad_image": 1,
    "missing_file": 1,
    "empty_caption": 1,
    "bad_json": 2,
    "missing_field": 1,
}


@pytest.mark.parametrize("decode", [True, False])
def test_image_jsonl_skips_bad_records_with_reasons(liquid_jsonl, decode):
    source = ImageTextJsonlSource(str(liquid_jsonl), decode=decode)
    assert len(source) == 10
    counter = SkipCounter("test", SkipPolicy(max_fraction=None))
    good = list(iterate_valid(source, counter))
    assert [i for i, _ in good] == [0, 1, 2]
    assert counter.counts == BAD and counter.seen == 10
    first = good[0][1]
    assert first["caption"] == "a red square" and (first["width"], first["height"]) == (32, 32)
    assert good[1][1]["caption"] == "wide-ish" and good[1][1]["width"] == 48
    assert first["id"] == f"{liquid_jsonl}:1"
    if decode:
        assert first["image"].shape == (32, 32, 3) and first["image"].dtype == np.uint8
        assert tuple(first["image"][0, 0]) == (200, 30, 30)
    else:
        assert "image" not in first
    # The reasons name the records (file:line) and what is wrong.
    assert counter.examples["aspect_ratio"][0].startswith(f"{liquid_jsonl}:4 ")
    assert "missing.png" in counter.examples["missing_file"][0]
    summary = counter.summary()
    assert "7 of 10 records skipped" in summary and "bad_json: 2" in summary


def test_threshold_error_names_counts_and_records(liquid_jsonl):
    source = ImageTextJsonlSource(str(liquid_jsonl))
    with pytest.raises(TooManySkipsError, match=r"7 of 10 records skipped \(70.0%\)") as info:
        list(iterate_valid(source, policy=SkipPolicy(max_fraction=0.5, min_seen=1000)))
    assert "aspect_ratio: 1" in str(info.value) and f"{liquid_jsonl}:4" in str(info.value)
    with pytest.raises(TooManySkipsError, match="3 skipped records exceed max_count=2"):
        list(iterate_valid(source, policy=SkipPolicy(max_fraction=None, max_count=2)))
    # Under the limits the pass completes.
    assert len(list(iterate_valid(source, policy=SkipPolicy(max_fraction=0.8)))) == 3


def test_skip_counter_state_merge_and_pickling():
    a, b = SkipCounter("a"), SkipCounter("b")
    a.ok(3)
    a.skip("bad_json", "f:1", "oops")
    b.skip("bad_json", "g:2")
    b.skip("missing_file", "g:3")
    merged = SkipCounter.merged([json.loads(json.dumps(a.state())), b.state()])
    assert merged.seen == 6 and merged.counts == {"bad_json": 2, "missing_file": 1}
    assert merged.examples["bad_json"] == ["f:1 (oops)", "g:2"]
    error = pickle.loads(pickle.dumps(BadRecord("bad_image", "x.png", "truncated")))
    assert (error.reason, error.record_id, error.detail) == ("bad_image", "x.png", "truncated")


def test_image_folder_layouts(tmp_path):
    side = tmp_path / "side"
    _png(str(side / "a.png"), 32, 32)
    (side / "a.txt").write_text("first caption\n")
    _png(str(side / "sub" / "b.jpg"), 40, 32)
    (side / "sub" / "b.txt").write_text("second")
    _png(str(side / "c.png"), 32, 32)  # no caption file
    source = ImageFolderSource(str(side))
    counter = SkipCounter("folder", SkipPolicy(max_fraction=None))
    good = dict(iterate_valid(source, counter))
    assert source.layout == "sidecar .txt"
    assert [r["id"] for r in good.values()] == ["a.png", os.path.join("sub", "b.jpg")]
    assert good[0]["caption"] == "first caption"
    assert counter.counts == {"missing_caption": 1}

    rows = tmp_path / "rows"
    _png(str(rows / "x.png"), 32, 32)
    _jsonl(rows / "captions.jsonl", [{"file": "x.png", "caption": "x!"}, "{bad", {"file": "y.png"}])
    source = ImageFolderSource(str(rows))
    counter = SkipCounter("rows", SkipPolicy(max_fraction=None))
    assert [r["caption"] for _, r in iterate_valid(source, counter)] == ["x!"]
    assert counter.counts == {"bad_json": 1, "missing_field": 1}

    table = tmp_path / "table"
    _png(str(table / "x.png"), 32, 32)
    (table / "captions.csv").write_text('image_path,text\nx.png,"a, caption"\nnope.png,hi\n')
    source = open_image_text_source(f"folder:{table}?decode=false")
    counter = SkipCounter("csv", SkipPolicy(max_fraction=None))
    assert [r["caption"] for _, r in iterate_valid(source, counter)] == ["a, caption"]
    assert counter.counts == {"missing_file": 1}


def test_text_sources(tmp_path):
    path = tmp_path / "docs.jsonl"
    _jsonl(path, [{"text": "one"}, {"text": ""}, "not json", {"body": "x"}, {"text": "two"}])
    source = TextJsonlSource(str(path))
    counter = SkipCounter("text", SkipPolicy(max_fraction=None))
    assert [r["text"] for _, r in iterate_valid(source, counter)] == ["one", "two"]
    assert counter.counts == {"empty_text": 1, "bad_json": 1, "missing_field": 1}
    # Sources travel to Grain workers: a pickled source reads the same records.
    assert pickle.loads(pickle.dumps(source))[4] == {"id": f"{path}:5", "text": "two"}

    txt = tmp_path / "book.txt"
    txt.write_text("First line\nsame paragraph.\n\n\nSecond paragraph.\n  \nThird\n")
    paragraphs = PlainTextSource(str(txt))
    assert [paragraphs[i]["text"] for i in range(len(paragraphs))] == [
        "First line\nsame paragraph.",
        "Second paragraph.",
        "Third",
    ]
    assert paragraphs[1]["id"] == f"{txt}:5"
    lines = open_text_source(f"txt:{tmp_path}/*.txt?unit=line")
    assert len(lines) == 4 and lines[3]["text"] == "Third"


def test_tfds_sources_and_concat(tmp_path):
    build_shapes_world(str(tmp_path), num_train=3, num_val=0, num_test=0)
    images = TfdsSource(str(tmp_path / "shapes_world" / "1.0.0"), "train")
    assert images.kind == "image_text" and len(images) == 3
    record = pickle.loads(pickle.dumps(images))[1]  # as a Grain worker would read it
    assert record["image"].shape == (32, 32, 3) and record["caption"]
    texts = open_text_source(f"tfds:{tmp_path}/shapes_world_text/1.0.0?split=train")
    both = ConcatSource([texts, open_text_source("shapes_text:2")])
    assert len(both) == 5 and both[4]["id"] == "shapes_text/train/1"
    with pytest.raises(ValueError, match="has images"):
        open_text_source(f"tfds:{tmp_path}/shapes_world/1.0.0")


def test_specs_and_stand_in_codes():
    assert parse_spec("txt:/a/b.txt?unit=line&x=1") == (
        "txt",
        "/a/b.txt",
        {"unit": "line", "x": "1"},
    )
    with pytest.raises(ValueError, match="unknown options"):
        open_text_source("shapes_text:3?colour=red")
    with pytest.raises(ValueError, match="KIND:PATH"):
        parse_spec("nothing")
    source = open_code_source("shapes:5?levels=2&grid=4")
    assert isinstance(source, ShapesCodeSource) and source.num_codes == 8
    record = source[2]
    assert record["codes"].shape == (16,) and record["codes"].max() < 8
    assert (record["grid_h"], record["grid_w"]) == (4, 4)
    # The stand-in tokenizer: cell means quantised per channel.
    image = np.zeros((8, 8, 3), np.uint8)
    image[:4, :4] = (255, 0, 0)
    image[4:, 4:] = (0, 130, 255)
    codes = stand_in_codes(image, grid=2, levels=4)
    np.testing.assert_array_equal(codes, [3 * 16, 0, 0, 0 * 16 + 2 * 4 + 3])
