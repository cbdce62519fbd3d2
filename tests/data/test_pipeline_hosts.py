"""The pipeline's host split, checked against a single host rather than against itself.

With ``num_epochs=1`` the whole stream is finite: one host must see every example once,
and two hosts (``process_index`` 0 and 1 of 2) must see disjoint sets of examples whose
union is exactly that. One row per host batch, so ``drop_remainder`` never drops one.

Mutations tried (each fails the test):
- ``pipeline.make_dataset`` slicing ``ds[0::process_count]`` on every host (both hosts
  read the same slice);
- no host slice at all (every host reads everything).
"""

from collections import Counter

import pytest

from liquid_jax.data.pipeline.dataset import make_iterator, shapes_config
from liquid_jax.data.tokenizers.load import load_tokenizer


def _examples(tokenizer, process_index, process_count):
    """Every packed example the host loads, as (task, tokens, loss_mask) tuples."""
    cfg = shapes_config(
        seq_len=256,
        batch_size=process_count,  # one row per host
        num_packing_bins=1,
        text_sources=("shapes_text:24",),
        image_text_sources=("shapes:24",),
        num_epochs=1,
        read_threads=0,
        max_skip_fraction=None,
    )
    out = []
    it = make_iterator(cfg, tokenizer, process_index=process_index, process_count=process_count)
    with it:
        for batch in it:
            for r in range(batch["tokens"].shape[0]):
                seg = batch["segment_ids"][r]
                for s in range(1, int(seg.max()) + 1):
                    on = seg == s
                    out.append((int(batch["task"][r][on][0]),
                                tuple(batch["tokens"][r][on].tolist()),
                                tuple(batch["loss_mask"][r][on].tolist())))  # fmt: skip
    return out


@pytest.fixture(scope="module")
def tokenizer(sp_dir):
    return load_tokenizer(sp_dir)


def test_two_hosts_split_the_single_host_stream(tokenizer):
    single = _examples(tokenizer, 0, 1)
    hosts = [_examples(tokenizer, i, 2) for i in range(2)]
    assert len(single) >= 40 and len(set(single)) == len(single)  # distinct examples
    assert {task for task, _, _ in single} == {0, 1, 2}  # text, T2I and I2T all present
    assert hosts[0] and hosts[1]
    assert not set(hosts[0]) & set(hosts[1])
    assert Counter(hosts[0]) + Counter(hosts[1]) == Counter(single)
