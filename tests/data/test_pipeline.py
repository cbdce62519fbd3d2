"""The Grain pipeline: batch format, determinism, exact resume (with and without worker
processes), skipped and oversize records counted, global batches."""

import json

import ml_collections
import numpy as np
import pytest

from liquid_jax.data.formats import TASK_I2T, TASK_T2I, TASK_TEXT
from liquid_jax.data.pipeline.dataset import (
    PipelineConfig,
    make_iterator,
    resolve_layout,
    shapes_config,
    to_global_batch,
)
from liquid_jax.data.pipeline.record_format import FormatOptions, ImageTextFormatter
from liquid_jax.data.skips import BadRecord, TooManySkipsError
from liquid_jax.data.sources.shapes import ShapesCodeSource
from liquid_jax.data.tokenizers.load import load_tokenizer
from liquid_jax.parallel import MeshConfig, make_mesh

GRID = 64  # stand-in codes: 8x8 per image


@pytest.fixture(scope="module")
def tokenizer(sp_dir):
    return load_tokenizer(sp_dir)


def _config(**overrides):
    values = dict(
        seq_len=256,
        batch_size=8,
        num_packing_bins=8,
        text_sources=("shapes_text:300",),
        image_text_sources=("shapes:300",),
        read_threads=0,
    )
    values.update(overrides)
    return shapes_config(**values)


def _iterator(cfg, tokenizer, **kwargs):
    return make_iterator(cfg, tokenizer, process_index=0, process_count=1, **kwargs)


def _take(it, n):
    return [next(it) for _ in range(n)]


def _assert_batches_equal(got, want):
    assert len(got) == len(want)
    for a, b in zip(got, want):
        assert sorted(a) == sorted(b)
        for key in b:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def _segments(batch):
    """Yields (tokens, loss_mask, task) of every packed example in the batch."""
    for r in range(batch["tokens"].shape[0]):
        seg = batch["segment_ids"][r]
        for s in range(1, int(seg.max()) + 1):
            where = seg == s
            yield batch["tokens"][r][where], batch["loss_mask"][r][where], batch["task"][r][where]


def test_batch_format_and_liquid_sequences(tokenizer):
    cfg = _config()
    layout = resolve_layout(cfg, tokenizer, [ShapesCodeSource(1)])
    with _iterator(cfg, tokenizer) as it:
        batches = _take(it, 4)
    tasks = set()
    for batch in batches:
        assert sorted(batch) == ["loss_mask", "positions", "segment_ids", "task", "tokens"]
        for value in batch.values():
            assert value.shape == (8, 256) and value.dtype == np.int32
        assert not batch["loss_mask"][batch["segment_ids"] == 0].any()
        for tokens, mask, task in _segments(batch):
            assert len(set(task)) == 1 and mask[0] == 0
            task = int(task[0])
            tasks.add(task)
            image = layout.is_image(tokens)
            if task == TASK_TEXT:  # a document or a window of one (long ones are split)
                assert not image.any() and mask[1:].all()
            else:  # a whole image, never cut; loss on the codes for T2I only
                assert tokens[0] == layout.bos_id
                assert image.sum() == GRID
                assert list(tokens).count(layout.boi_id) == 1 == list(tokens).count(layout.eoi_id)
                assert mask[image].all() if task == TASK_T2I else not mask[image].any()
                assert tokens[-1] == layout.eos_id and mask[-1] == 1
    assert tasks == {TASK_TEXT, TASK_T2I, TASK_I2T}
    # Tokens of the text stream decode to shapes-world sentences.
    tokens, _, _ = next(s for s in _segments(batches[0]) if s[2][0] == TASK_TEXT)
    assert tokenizer.decode(tokens).strip()[-1] == "."


def test_deterministic_given_the_seed(tokenizer):
    first = _take(_iterator(_config(), tokenizer), 3)
    _assert_batches_equal(_take(_iterator(_config(), tokenizer), 3), first)
    other = _take(_iterator(_config(seed=1), tokenizer), 1)[0]
    assert not np.array_equal(other["tokens"], first[0]["tokens"])


@pytest.mark.parametrize("workers", [0, 2])
def test_state_resumes_exactly(tokenizer, workers):
    cfg = _config(num_workers=workers)
    with _iterator(cfg, tokenizer) as it:
        _take(it, 3)
        state = json.loads(json.dumps(it.get_state()))  # what the checkpoint stores
        uninterrupted = _take(it, 4)
        skips = it.skips().state()
    with _iterator(cfg, tokenizer) as resumed:
        resumed.set_state(state)
        _assert_batches_equal(_take(resumed, 4), uninterrupted)
        assert resumed.skips().state() == skips
    with pytest.raises(ValueError, match="num_workers"):
        _iterator(_config(num_workers=workers + 1), tokenizer).set_state(state)


class FlakyCodes:
    """Stand-in code records of which every 4th is bad (picklable, for worker processes)."""

    def __init__(self, n):
        self.inner = ShapesCodeSource(n)
        self.num_codes = self.inner.num_codes

    def __len__(self):
        return len(self.inner)

    def __getitem__(self, index):
        if index % 4 == 0:
            raise BadRecord("bad_image", f"flaky/{index}", "unreadable")
        return self.inner[index]


def test_bad_records_are_counted_and_limited(tokenizer):
    cfg = _config(text_weight=0.0, max_skip_fraction=None)
    with _iterator(cfg, tokenizer, image_text_sources=[FlakyCodes(400)]) as it:
        _take(it, 5)
        counter = it.skips()
    assert set(counter.counts) == {"bad_image"}
    assert 0.15 < counter.counts["bad_image"] / counter.seen < 0.35
    assert counter.examples["bad_image"][0].startswith("flaky/")
    assert "bad_image" in counter.summary()

    cfg = _config(text_weight=0.0, max_skip_fraction=0.1, min_records_for_fraction=40)
    too_many = pytest.raises(TooManySkipsError, match=r"skipped .* exceeds max_fraction=10.0%")
    with _iterator(cfg, tokenizer, image_text_sources=[FlakyCodes(400)]) as it, too_many:
        _take(it, 20)


def test_oversize_image_examples_are_dropped_and_counted(tokenizer):
    # With this tokenizer T2I examples take 69-158 tokens: about half fit 128.
    cfg = _config(
        seq_len=128, num_epochs=1, text_sources=("shapes_text:100",), max_skip_fraction=None
    )
    layout = resolve_layout(cfg, tokenizer, [ShapesCodeSource(1)])
    with _iterator(cfg, tokenizer) as it:
        batches = list(it)
        counter = it.skips()
    dropped = sum(v for k, v in counter.counts.items() if k.startswith("too_long_"))
    kept = 0
    for batch in batches:
        for tokens, _, task in _segments(batch):
            if task[0] != TASK_TEXT:
                kept += 1
                assert layout.is_image(tokens).sum() == GRID  # whole images only
    assert dropped > 20 and kept > 20
    assert "too_long_t2i" in counter.counts
    assert set(counter.counts) <= {"too_long_t2i", "too_long_i2t"}
    assert "tokens > 128" in counter.examples["too_long_t2i"][0]


def test_per_record_randomness(tokenizer):
    layout = resolve_layout(_config(), tokenizer, [ShapesCodeSource(1)])
    formatter = ImageTextFormatter(tokenizer, layout, FormatOptions(seq_len=256, downsample=4))
    source = ShapesCodeSource(200)
    items = [formatter(i, source[i]) for i in range(200)]
    again = formatter(17, source[17])["examples"][0]["tokens"]
    np.testing.assert_array_equal(items[17]["examples"][0]["tokens"], again)
    tasks = [int(item["examples"][0]["task"]) for item in items]
    assert 0.7 < tasks.count(TASK_T2I) / 200 < 0.9  # t2i_fraction 0.8
    # The next epoch of the same record draws again.
    later = [int(formatter(i + 200, source[i])["examples"][0]["task"]) for i in range(200)]
    assert later != tasks


def test_config_and_global_batch(tokenizer):
    c = ml_collections.ConfigDict(
        {"seq_len": 64, "batch_size": 8, "text_sources": ["shapes_text:50"], "read_threads": 0}
    )
    cfg = PipelineConfig.from_config(c)
    assert cfg.text_sources == ("shapes_text:50",) and cfg.image_text_sources == ()
    with pytest.raises(ValueError, match="unknown keys"):
        PipelineConfig.from_config({"seq_length": 3})
    with pytest.raises(ValueError, match="num_image_codes"):
        _iterator(
            _config(image_text_sources=("codes:/nowhere",)),
            tokenizer,
            image_text_sources=[object()],
        )

    with _iterator(cfg, tokenizer) as it:  # text only: no image codes needed
        batch = next(it)
    mesh = make_mesh(MeshConfig(data=-1))
    arrays = to_global_batch(batch, mesh)
    assert arrays["tokens"].shape == (8, 64)
    assert len(arrays["tokens"].sharding.device_set) == 8
    np.testing.assert_array_equal(np.asarray(arrays["positions"]), batch["positions"])


def test_config_validation_overrides():
    """A ``data`` section's ``validation`` keys replace the training ones on request."""
    validation = {"text_sources": ["b"], "num_epochs": 1}
    section = ml_collections.ConfigDict(
        {"seq_len": 64, "text_sources": ["a"], "validation": validation}
    )
    train, val = PipelineConfig.from_config(section), PipelineConfig.from_config(section, True)
    assert (train.text_sources, train.num_epochs) == (("a",), None)
    assert (val.text_sources, val.num_epochs, val.seq_len) == (("b",), 1, 64)
