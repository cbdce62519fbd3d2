"""Packing Liquid examples into fixed-length rows, and counting skips on the way.

Stages (all Grain ``IterDataset``s with exact, JSON-able ``get_state``/``set_state``):

1. ``FlattenExamples``: items ``{"examples", "skips"}`` (``record_format``) -> single
   examples ``{"tokens", "loss_mask", "task": int32[L]}`` (task broadcast per token);
   the skips are counted on a ``SkipCounter`` kept in the iterator state.
2. ``pack``: Grain's first-fit packer (``grain.experimental.FirstFitPackIterDataset``)
   with ``num_bins`` rows of ``seq_len``: each example goes whole into the first row
   with room; when one fits nowhere, the rows are emitted and refilled. Rows are
   renamed to::

       tokens       int32[L]  pad_id after the last segment
       loss_mask    int32[L]  the examples' masks, 0 on padding
       segment_ids  int32[L]  1..k for the k examples of the row, 0 on padding
       positions    int32[L]  0.. restarting at each segment, 0 on padding
       task         int32[L]  the example's task per token, 0 on padding

   Nothing is cut or repeated: examples longer than ``seq_len`` must have been dropped
   (``formats.fit_to_length``) before.
3. ``AttachSkips``: after batching, adds ``"_skips": {"worker", "state"}`` (the live
   counter of stage 1 in this process) so the main process can report and limit skips
   even when the work runs in Grain worker processes (``pipeline.LiquidIterator``).
"""

from __future__ import annotations

import weakref
from typing import Any

import grain
import numpy as np

from liquid_jax.data.skips import SkipCounter

SKIPS_KEY = "_skips"
BATCH_KEYS = ("tokens", "loss_mask", "segment_ids", "positions", "task")


def per_token(example: dict) -> dict:
    """Example with scalar ``task`` -> all fields int32[L] (what the packer needs)."""
    tokens = np.asarray(example["tokens"], np.int32)
    return {
        "tokens": tokens,
        "loss_mask": np.asarray(example["loss_mask"], np.int32),
        "task": np.full(tokens.shape, int(example["task"]), np.int32),
    }


class _FlattenIterator(grain.DatasetIterator):
    def __init__(self, parent: grain.DatasetIterator, name: str):
        super().__init__(parent)
        self.counter = SkipCounter(name)
        self._item: list | None = None  # examples of the current item
        self._offset = 0  # how many of them were emitted
        self._parent_state = parent.get_state()  # parent state before the current item

    def __next__(self) -> dict:
        while self._item is None or self._offset >= len(self._item):
            self._parent_state = self._parent.get_state()
            self._item = None  # an exhausted parent leaves a state with no current item
            item = next(self._parent)
            self._count(item)
            self._item, self._offset = item["examples"], 0
        self._offset += 1
        return per_token(self._item[self._offset - 1])

    def _count(self, item: dict) -> None:
        skips = item["skips"]
        for reason, record_id, detail in skips:
            self.counter.skip(reason, record_id, detail)
        if not skips:
            self.counter.ok()

    def get_state(self) -> dict:
        # The counts already include the current item; restoring re-reads it uncounted.
        return {
            "parent": self._parent_state,
            "offset": self._offset,
            "has_item": self._item is not None,
            "skips": self.counter.state(),
        }

    def set_state(self, state: dict) -> None:
        self._parent.set_state(state["parent"])
        self._parent_state = state["parent"]
        self.counter.set_state(state["skips"])
        self._item, self._offset = None, 0
        if state["has_item"]:
            self._item = next(self._parent)["examples"]
            self._offset = int(state["offset"])


class FlattenExamples(grain.IterDataset):
    """Items -> per-token examples, counting the items' skips (see module docstring)."""

    def __init__(self, parent: grain.IterDataset, name: str = "data"):
        super().__init__(parent)
        self.name = name
        self._live: weakref.ref | None = None

    def __iter__(self) -> _FlattenIterator:
        it = _FlattenIterator(self._parent.__iter__(), self.name)
        self._live = weakref.ref(it)
        return it

    def live_counter(self) -> SkipCounter | None:
        """The counter of the iterator made last in this process (None if none is alive)."""
        it = self._live() if self._live is not None else None
        return it.counter if it is not None else None

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_live"] = None  # weak references do not pickle (workers make their own)
        return state

    def __str__(self) -> str:
        return f"FlattenExamples({self.name})"


def _rename(row: dict) -> dict:
    return {
        "tokens": row["tokens"],
        "loss_mask": row["loss_mask"],
        "segment_ids": row["tokens_segment_ids"],
        "positions": row["tokens_positions"],
        "task": row["task"],
    }


def pack(ds: grain.IterDataset, seq_len: int, num_bins: int, pad_id: int = 0) -> grain.IterDataset:
    """Per-token examples -> packed rows of ``int32[seq_len]`` (``BATCH_KEYS``)."""
    if seq_len < 2 or num_bins < 1:
        raise ValueError(f"pack: need seq_len >= 2 and num_bins >= 1, got {seq_len}, {num_bins}")
    fields = ("tokens", "loss_mask", "task")
    ds = grain.experimental.FirstFitPackIterDataset(
        ds,
        length_struct={k: seq_len for k in fields},
        num_packing_bins=num_bins,
        shuffle_bins=False,
        # Packed along with the tokens but without their own segment ids/positions.
        meta_features=("loss_mask", "task"),
        padding_struct={"tokens": pad_id, "loss_mask": 0, "task": 0},
    )
    return ds.map(_rename)


class _AttachIterator(grain.DatasetIterator):
    def __init__(self, parent: grain.DatasetIterator, flatten: FlattenExamples):
        super().__init__(parent)
        self._counter = flatten.live_counter()

    def __next__(self) -> dict:
        batch = dict(next(self._parent))
        state = self._counter.state() if self._counter is not None else None
        worker = self._ctx.mp_context.process_index
        batch[SKIPS_KEY] = {"worker": int(worker), "state": state}
        return batch

    def get_state(self) -> Any:
        return self._parent.get_state()

    def set_state(self, state: Any) -> None:
        self._parent.set_state(state)


class AttachSkips(grain.IterDataset):
    """Adds the skip counts of ``flatten`` (an upstream stage) to every batch."""

    def __init__(self, parent: grain.IterDataset, flatten: FlattenExamples):
        super().__init__(parent)
        self._flatten = flatten

    def __iter__(self) -> _AttachIterator:
        # Making the parent iterator makes the FlattenExamples iterator it reads from.
        return _AttachIterator(self._parent.__iter__(), self._flatten)

    def __str__(self) -> str:
        return "AttachSkips"
