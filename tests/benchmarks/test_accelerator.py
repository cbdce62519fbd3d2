"""``benchmarks/accelerator.py --tiny`` runs on the CPU (so it cannot rot), and the decoding
floor counts exactly the bytes of the model's layers and code-head rows."""

import re

import jax
import numpy as np
import pytest
from flax import nnx

from benchmarks import accelerator
from liquid_jax.models import Transformer, TransformerSpec


def test_tiny_run_prints_mfu_and_t2i_against_its_floor(capsys):
    accelerator.main(["--tiny"])
    train, t2i = capsys.readouterr().out.strip().splitlines()[-2:]
    mfu = float(re.search(r"MFU ([\d.]+)%", train).group(1))
    assert train.startswith(f"train tiny on {jax.device_count()} x ") and mfu > 0
    seconds, floor, ratio = (float(x) for x in re.search(
        r": ([\d.]+) s for 4 images x 16 codes with CFG, floor ([\d.]+) s .*ratio ([\d.]+)$",
        t2i).groups())  # fmt: skip
    assert seconds > 0 and ratio == pytest.approx(seconds / floor, rel=0.01)


@pytest.mark.parametrize("family", ["gemma", "gemma2", "qwen2"])
def test_floor_bytes_are_the_layers_and_code_rows_in_bf16(family):
    spec = TransformerSpec.for_family(family, **accelerator.TINY)
    model = nnx.eval_shape(lambda: Transformer(spec, rngs=nnx.Rngs(0)))
    layers = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(nnx.state(model.layers)))
    want = 2 * (layers + 64 * spec.hidden_size)
    assert accelerator.decode_floor_bytes(spec, 64, rows=0, context=0) == want
    kv = 2 * spec.num_layers * spec.num_kv_heads * spec.head_dim * 8 * 100  # k and v
    assert accelerator.decode_floor_bytes(spec, 64, rows=8, context=100) == want + 2 * kv


def test_decode_analysis_counts_the_loop_near_its_floor():
    """A small preset's decode loop (two phases), as written, reads at least the floor
    (weights and cache cannot be skipped) and not wildly more, in bf16 and int8."""
    from benchmarks import decode_analysis

    bf16 = decode_analysis.decode_bytes("qwen2.5_0.5b", images=1, codes=16, phases=2)
    int8 = decode_analysis.decode_bytes(
        "qwen2.5_0.5b", images=1, codes=16, phases=2, quantize="int8", compiled=False
    )
    for r in (bf16, int8):
        assert r["floor"] <= r["written"] < 3 * r["floor"] and len(r["phases"]) == 2
    assert bf16["compiled_last"] > 0 and int8["floor"] < 0.6 * bf16["floor"]
    assert int8["unfused"] > int8["written"]  # the int8 converts, counted as fused
