"""Code records: ArrayRecord shards round trip, naming, atomicity, corrupt records."""

import os
import pickle

import numpy as np
import pytest

from liquid_jax.data.skips import BadRecord
from liquid_jax.data.sources.code_records import (
    CodeRecordSource,
    CodeRecordWriter,
    decode_code_record,
    encode_code_record,
    find_shards,
)


def _record(i, grid=(3, 4), top=8192):
    rng = np.random.default_rng(i)
    return {
        "codes": rng.integers(0, top, size=grid[0] * grid[1]).astype(np.int32),
        "grid_h": grid[0],
        "grid_w": grid[1],
        "caption": f"caption {i} with ünïcode",
        "orig_w": 640 + i,
        "orig_h": 480,
        "source_id": f"images/{i}.jpg",
    }


def _assert_same(got, want):
    np.testing.assert_array_equal(got["codes"], want["codes"])
    assert got["codes"].dtype == np.int32
    assert {k: v for k, v in got.items() if k != "codes"} == {
        k: v for k, v in want.items() if k != "codes"
    }


def test_round_trip_over_shards(tmp_path):
    records = [_record(i) for i in range(7)]
    with CodeRecordWriter(str(tmp_path), records_per_shard=3) as writer:
        for r in records:
            writer.write(r)
    names = sorted(os.listdir(tmp_path))
    assert names == [f"codes-0000{i}-of-00003.array_record" for i in range(3)]
    source = pickle.loads(pickle.dumps(CodeRecordSource(str(tmp_path))))  # for Grain workers
    assert len(source) == 7
    for i in (0, 3, 6, 2):  # random access across shards
        _assert_same(source[i], records[i])
    for got, want in zip(source.__getitems__([5, 1]), [records[5], records[1]]):
        _assert_same(got, want)


def test_encoding_widths_and_corruption():
    small, big = _record(0), _record(1, grid=(2, 2), top=2**20)
    big["codes"][0] = 2**20 - 1
    for r in (small, big):
        _assert_same(decode_code_record(encode_code_record(r)), r)
    # 16-bit codes when they fit: header + 12 * 2 bytes.
    assert len(encode_code_record(small)) < len(
        encode_code_record({**small, "codes": small["codes"] + 2**16})
    )
    data = encode_code_record(small)
    with pytest.raises(BadRecord, match="shard:3: bad_codes"):
        decode_code_record(data[:-2], "shard:3")
    with pytest.raises(BadRecord, match="magic"):
        decode_code_record(b"XXXX" + data[4:])
    with pytest.raises(ValueError, match="do not|codes for a 3x3 grid"):
        encode_code_record({**small, "grid_w": 3, "grid_h": 3})


def test_interrupted_writes_leave_no_complete_shards(tmp_path):
    writer = CodeRecordWriter(str(tmp_path), records_per_shard=2)
    with pytest.raises(RuntimeError), writer:
        for i in range(3):
            writer.write(_record(i))
        raise RuntimeError("crash")
    assert os.listdir(tmp_path) == []
    with pytest.raises(FileNotFoundError, match="no codes-NNNNN-of-NNNNN"):
        find_shards(str(tmp_path), "codes")


def test_several_prefixes_and_incomplete_sets(tmp_path):
    for host in range(2):
        with CodeRecordWriter(str(tmp_path), prefix=f"codes-host{host}", records_per_shard=2) as w:
            for i in range(3):
                w.write(_record(10 * host + i))
    assert len(CodeRecordSource(str(tmp_path))) == 6
    assert len(CodeRecordSource(str(tmp_path), prefix="codes-host1")) == 3
    assert CodeRecordSource(str(tmp_path))[3]["source_id"] == "images/10.jpg"
    with pytest.raises(FileExistsError, match="already holds"):
        CodeRecordWriter(str(tmp_path), prefix="codes-host0")
    os.remove(tmp_path / "codes-host1-00001-of-00002.array_record")
    with pytest.raises(ValueError, match=r"'codes-host1' is incomplete.*missing indices \[1\]"):
        CodeRecordSource(str(tmp_path))
