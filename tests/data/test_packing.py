"""Packing: segment ids, positions, masks, tasks; no token lost or repeated; exact state."""

import json
from collections import Counter

import grain
import numpy as np
import pytest

from liquid_jax.data.pipeline.packing import FlattenExamples, pack

SEQ_LEN, PAD = 32, 0
RECORDS = 120


def _item(i: int) -> dict:
    """Record i: 0-2 examples of length 2..SEQ_LEN; every token names (record, example, pos).

    Token ``1 + i * 1000 + e * 100 + p`` (never the pad id), a random loss mask with
    ``mask[0] == 0``, task ``(i + e) % 4``; every 7th record also reports a skip.
    """
    rng = np.random.default_rng(i)
    examples = []
    for e in range(int(rng.integers(0, 3))):
        n = SEQ_LEN if (i + e) % 11 == 0 else int(rng.integers(2, SEQ_LEN))
        mask = rng.integers(0, 2, size=n).astype(np.int32)
        mask[0] = 0
        examples.append(
            {
                "tokens": (1 + i * 1000 + e * 100 + np.arange(n)).astype(np.int32),
                "loss_mask": mask,
                "task": np.int32((i + e) % 4),
            }
        )
    skips = [("too_long_t2i", f"rec{i}", "")] if i % 7 == 0 else []
    return {"examples": examples, "skips": skips}


def _expected() -> dict:
    """(token id) -> (loss mask, task) for every token of every example."""
    out = {}
    for i in range(RECORDS):
        for ex in _item(i)["examples"]:
            for t, m in zip(ex["tokens"], ex["loss_mask"]):
                out[int(t)] = (int(m), int(ex["task"]))
    return out


def _dataset(num_bins=4):
    items = grain.MapDataset.range(RECORDS).map(_item).to_iter_dataset()
    flatten = FlattenExamples(items, "test")
    return pack(flatten, SEQ_LEN, num_bins, PAD), flatten


def _check_row(row):
    seg, pos = row["segment_ids"], row["positions"]
    for key in ("tokens", "loss_mask", "segment_ids", "positions", "task"):
        assert row[key].shape == (SEQ_LEN,) and row[key].dtype == np.int32, key
    used = int((seg > 0).sum())
    assert (seg[:used] > 0).all() and (seg[used:] == 0).all(), "padding only at the end"
    # Segment ids count 1..k in order; positions restart at 0 in each segment.
    starts = np.flatnonzero(np.diff(np.concatenate([[0], seg[:used]])) != 0)
    assert list(seg[starts]) == list(range(1, len(starts) + 1))
    for a, b in zip(starts, list(starts[1:]) + [used]):
        np.testing.assert_array_equal(pos[a:b], np.arange(b - a))
        # One example per segment: consecutive tokens of one (record, example).
        np.testing.assert_array_equal(np.diff(row["tokens"][a:b]), 1)
        assert row["loss_mask"][a] == 0, "a segment's first token is never a target"
    tail = slice(used, None)
    assert (row["tokens"][tail] == PAD).all() and not row["loss_mask"][tail].any()
    assert not row["task"][tail].any() and not pos[tail].any()
    return used


def test_full_pass_keeps_every_token_once_with_its_mask_and_task():
    ds, _ = _dataset()
    expected = _expected()
    seen = Counter()
    rows = 0
    for row in ds:
        used = _check_row(row)
        rows += 1
        for t, m, task in zip(row["tokens"][:used], row["loss_mask"][:used], row["task"][:used]):
            seen[int(t)] += 1
            assert (int(m), int(task)) == expected[int(t)], int(t)
    assert set(seen) == set(expected) and set(seen.values()) == {1}
    # First fit over 4 rows packs tightly: well under one padded row per 4.
    assert len(expected) / (rows * SEQ_LEN) > 0.75


def test_skips_are_counted_in_the_state():
    ds, flatten = _dataset()
    it = iter(ds)
    for _ in it:
        pass
    counter = flatten.live_counter()
    assert counter.counts == {"too_long_t2i": len(range(0, RECORDS, 7))}
    assert counter.seen == RECORDS
    assert counter.examples["too_long_t2i"][:2] == ["rec0", "rec7"]


@pytest.mark.parametrize("stop", [1, 6, 13])
def test_state_restores_exactly(stop):
    ds, _ = _dataset(num_bins=3)
    reference = list(ds)
    it = iter(ds)
    for _ in range(stop):
        next(it)
    state = json.loads(json.dumps(it.get_state()))
    ds2, flatten2 = _dataset(num_bins=3)
    it2 = iter(ds2)
    it2.set_state(state)
    rest = list(it2)
    assert len(rest) == len(reference) - stop
    for got, want in zip(rest, reference[stop:]):
        for key in want:
            np.testing.assert_array_equal(got[key], want[key])
    # The counts restored with the state end as in an uninterrupted pass.
    assert flatten2.live_counter().seen == RECORDS


def test_flatten_restores_inside_a_multi_example_item():
    items = grain.MapDataset.range(30).map(_item).to_iter_dataset()
    reference = list(FlattenExamples(items))
    for stop in range(1, 12):
        it = iter(FlattenExamples(items))
        for _ in range(stop):
            next(it)
        state = json.loads(json.dumps(it.get_state()))
        it2 = iter(FlattenExamples(items))
        it2.set_state(state)
        rest = list(it2)
        assert [r["tokens"][0] for r in rest] == [r["tokens"][0] for r in reference[stop:]]
        assert it2.counter.seen == 30


def test_state_after_the_end_restores_to_the_end():
    items = grain.MapDataset.range(10).map(_item).to_iter_dataset()
    it = iter(FlattenExamples(items))
    total = len(list(it))
    state = json.loads(json.dumps(it.get_state()))
    it2 = iter(FlattenExamples(items))
    it2.set_state(state)
    assert total > 0 and list(it2) == [] and it2.counter.seen == 10


def test_oversize_examples_are_refused_not_cut():
    example = {"tokens": np.arange(SEQ_LEN + 1), "loss_mask": np.ones(SEQ_LEN + 1), "task": 1}
    items = grain.MapDataset.source([{"examples": [example], "skips": []}]).to_iter_dataset()
    with pytest.raises(ValueError, match="truncated to max length"):
        list(pack(FlattenExamples(items), SEQ_LEN, 2))
