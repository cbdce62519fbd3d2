"""Prefill + decode over the KV cache, the whole decode loop compiled.

The ``Decoder`` holds one copy of the weights, the model's ``DecodeModel`` (each layer
apart, the vocabulary in blocks at the sampler's text | image-code edges, cast or
quantized once at load), and two pure functions of ``(graphdef, state, inputs)`` run
from it, jitted once per ``DecodeSpec`` and batch shape (with explicit shardings when a
mesh is given, the loop state donated):

- ``start``: ``DecodeModel.prefill`` over the left-padded prompts fills the
  ``KVCache`` and draws the first token;
- ``advance``: a ``lax.while_loop`` of ``DecodeModel.decode_step`` (the model's own
  layers over the same cache, the head's blocks for ``DecodeSpec.token_range`` read as
  they lie) that feeds the last token, draws the next, and stops at a step limit or
  when every row has produced an end token (finished rows emit ``pad_id``).

The loop runs in phases (``phases``): each phase's ``advance`` is compiled for a cache
just long enough for its steps, and the cache grows between phases, so a step's
attention reads about the filled part of the cache rather than all of it. The host
calls ``advance`` once per phase, or in chunks of steps to report progress; each call
runs the compiled loop, never one Python dispatch per token.

Rows of a batch are independent. Row ``b``'s draws use
``fold_in(fold_in(key(seed), sample_ids[b]), step)``, so a sample depends on the seed and
its own index only, not on the batch it was run in. With classifier-free guidance each
sample has two rows, interleaved ``(cond_0, uncond_0, cond_1, ...)`` so that a pair stays
on one device under data parallelism; both rows are fed the token drawn from the guided
logits.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging
from flax import nnx
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from liquid_jax.errors import InputError
from liquid_jax.models.decode_model import DecodeModel
from liquid_jax.models.transformer import Transformer
from liquid_jax.parallel.host_batch import batch_sharding
from liquid_jax.parallel.sharding import state_shardings
from liquid_jax.sample.decode_spec import DecodeSpec, SamplingParams
from liquid_jax.sample.decode_state import DecodeState, decode_state_shardings, grow_cache
from liquid_jax.sample.filters import draw, guide
from liquid_jax.sample.phases import plan_phases
from liquid_jax.sample.prompts import PromptBatch
from liquid_jax.sample.quantize import check_mode, quantize_piece


@dataclasses.dataclass(frozen=True)
class Generation:
    """tokens: int32[B, N] (``pad_id`` after a row's end token); steps: tokens drawn
    per row (< N when every row stopped early); seconds: wall time of the decode."""

    tokens: np.ndarray
    steps: int
    seconds: float


def row_keys(seed: jax.Array, sample_ids: jax.Array) -> jax.Array:
    """seed: uint32[]; sample_ids: int32[B] -> key[B] (one independent stream per sample)."""
    base = jax.random.key(seed)
    return jax.vmap(jax.random.fold_in, (None, 0))(base, sample_ids)


def _choose(spec: DecodeSpec, params: SamplingParams, logits_rn, keys_b, step):
    """logits: float32[R, hi - lo] of ids ``spec.token_range`` -> int32[B] token ids."""
    lo, hi = spec.token_range
    logits = logits_rn.astype(jnp.float32)
    if spec.cfg:
        pairs = logits.reshape(-1, 2, hi - lo)
        logits = guide(pairs[:, 0], pairs[:, 1], params.cfg_scale, params.cfg_min_p)
    step_keys = jax.vmap(jax.random.fold_in, (0, None))(keys_b, step)
    index = draw(
        step_keys,
        logits,
        temperature=params.temperature,
        top_k=spec.top_k,
        top_p=params.top_p,
        nucleus=spec.nucleus,
        greedy=spec.greedy,
    )
    return index + lo


def _record(spec: DecodeSpec, ds: DecodeState, token_b) -> DecodeState:
    token_b = jnp.where(ds.done, spec.pad_id, token_b)
    tokens = jax.lax.dynamic_update_slice(ds.tokens, token_b[:, None], (0, ds.step))
    done = ds.done
    if spec.eos_ids:
        done = done | jnp.isin(token_b, jnp.asarray(spec.eos_ids, jnp.int32))
    last = jnp.repeat(token_b, 2) if spec.cfg else token_b
    return ds.replace(tokens=tokens, done=done, last=last, step=ds.step + 1)


def _start(
    graphdef, spec, cache_len, state, tokens, positions, segments, lengths, sample_ids, seed, params
):
    """Prefill the prompts (int32[R, P] each) into a cache of ``cache_len`` slots (the
    first phase's) and draw the first token -> DecodeState."""
    model = nnx.merge(graphdef, state)
    rows, length = tokens.shape
    cache = model.init_cache(rows, cache_len)
    last_index = jnp.full((rows, 1), length - 1, jnp.int32)
    logits, cache = model.prefill(
        tokens, positions, segments, cache=cache, logit_indices=last_index,
        columns=spec.token_range,
    )  # fmt: skip
    keys = row_keys(seed, sample_ids)
    samples = sample_ids.shape[0]
    ds = DecodeState(
        cache=cache,
        last=jnp.zeros((rows,), jnp.int32),
        positions=lengths.astype(jnp.int32),
        tokens=jnp.full((samples, spec.max_new_tokens), spec.pad_id, jnp.int32),
        done=jnp.zeros((samples,), bool),
        keys=keys,
        step=jnp.zeros((), jnp.int32),
    )
    return _record(spec, ds, _choose(spec, params, logits[:, 0], keys, ds.step))


def _advance(graphdef, spec, state, ds: DecodeState, params, stop_at):
    """Decode until ``step == stop_at`` or every row is done -> DecodeState."""

    def body(ds):
        # Rebuilt inside the loop's trace: NNX refuses modules from an outer trace.
        model = nnx.merge(graphdef, state)
        logits, cache = model.decode_step(ds.last, ds.positions, ds.cache, spec.token_range)
        ds = ds.replace(cache=cache, positions=ds.positions + 1)
        return _record(spec, ds, _choose(spec, params, logits, ds.keys, ds.step))

    cond = lambda ds: (ds.step < stop_at) & ~jnp.all(ds.done)
    return jax.lax.while_loop(cond, body, ds)


def _layout(tree) -> tuple:
    leaves, structure = jax.tree.flatten(tree)
    return structure, [(x.shape, x.dtype) for x in leaves]


def _to_host(x) -> np.ndarray:
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(x)


class Decoder:
    """The one copy of a ``Transformer``'s weights as decoding reads them (a
    ``DecodeModel`` split into ``(graphdef, state)``), plus its compiled loops.

    ``splits``: token ids where a vocabulary block of the head starts (the sampler's
    text | image-code edges): a ``DecodeSpec.token_range`` whose ends are edges reads its
    blocks in place. ``quantize``: "int8" quantizes each piece as the model is taken
    apart (``quantize.quantize_piece``). With ``mesh`` each piece is placed with its
    logical-axis shardings as it is cut, batches are split over the mesh's batch axes
    (padded to a multiple of their size) and the cache follows ``KVCache`` logical axes.
    ``runs`` counts prefills (tests check that bad input fails before any).
    """

    def __init__(
        self,
        model: Transformer,
        mesh: Mesh | None = None,
        *,
        splits: tuple[int, ...] = (),
        quantize: str | None = None,
    ):
        if quantize is not None:
            check_mode(quantize)
        self.model_spec = model.spec
        self.mesh = mesh
        self.splits = tuple(int(s) for s in splits)
        self.quantize = quantize
        self._source_layout = _layout(nnx.state(model))
        self.graphdef, self.state = nnx.split(self._decode_model(model))
        self._state_sharding = None if mesh is None else state_shardings(self.state, mesh)
        self._compiled: dict = {}
        self.runs = 0

    def _decode_model(self, model: Transformer) -> DecodeModel:
        quantize = quantize_piece if self.quantize is not None else None
        return DecodeModel.from_transformer(
            model, self.splits, place=self._place_piece, quantize=quantize
        )

    def _place_piece(self, piece: nnx.Module) -> None:
        """Puts one piece of the ``DecodeModel`` on the sampling devices (from wherever
        the model was loaded, e.g. the host)."""
        state = nnx.state(piece)
        if self.mesh is None:
            target = jax.devices()[0]
        else:
            target = state_shardings(state, self.mesh)
        nnx.update(piece, jax.device_put(state, target))

    def set_weights(self, model: Transformer) -> None:
        """Decodes with ``model``'s weights from now on (e.g. another checkpoint of the same
        run); the model must have this one's architecture, so compiled loops are kept."""
        if _layout(nnx.state(model)) != self._source_layout:
            raise ValueError("decoder: set_weights needs a model of the same architecture")
        _, self.state = nnx.split(self._decode_model(model))

    @property
    def row_multiple(self) -> int:
        """Samples per batch must be a multiple of this (the data-parallel size)."""
        if self.mesh is None:
            return 1
        axes = batch_sharding(self.mesh, 1).spec[0] or ()
        axes = (axes,) if isinstance(axes, str) else tuple(axes)
        return int(np.prod([self.mesh.shape[a] for a in axes]))

    def _functions(self, spec: DecodeSpec, inputs: tuple, seed, params):
        """``(start, [(phase, advance, grow or None)])`` compiled ahead of time
        for these shapes, so that a run's timing and progress rates never include
        compilation; ``grow`` takes the previous phase's state to this phase's cache."""
        key = (spec,) + tuple(x.shape for x in inputs)
        if key in self._compiled:
            return self._compiled[key]
        t0 = time.perf_counter()
        plan = plan_phases(inputs[0].shape[1], spec.max_new_tokens, spec.phases)
        start = functools.partial(_start, self.graphdef, spec, plan[0].cache_len)
        advance = functools.partial(_advance, self.graphdef, spec)
        with self._mesh_context():
            abstract = jax.eval_shape(start, self.state, *inputs, seed, params)
            ds = self._ds_shardings(abstract)
            if self.mesh is None:
                start_jit = jax.jit(start)
            else:
                rep = NamedSharding(self.mesh, P())
                batch = tuple(batch_sharding(self.mesh, x.ndim) for x in inputs[:5])
                start_jit = jax.jit(
                    start, in_shardings=(self._state_sharding, *batch, rep, rep), out_shardings=ds
                )
            start_fn = start_jit.lower(self.state, *inputs, seed, params).compile()
            phases = []
            for phase in plan:
                grow_fn = None
                if phase.cache_len != abstract.cache.max_len:
                    grow = functools.partial(grow_cache, phase.cache_len)
                    grown = jax.eval_shape(grow, abstract)
                    grown_ds = self._ds_shardings(grown)
                    grow_jit = self._jit(grow, (ds,), grown_ds, donate=())  # new buffers anyway
                    grow_fn = grow_jit.lower(abstract).compile()
                    abstract, ds = grown, grown_ds
                rep = None if self.mesh is None else NamedSharding(self.mesh, P())
                shardings = (self._state_sharding, ds, rep, rep)
                advance_jit = self._jit(advance, shardings, ds, donate=(1,))
                lowered = advance_jit.lower(self.state, abstract, params, np.int32(0))
                advance_fn = lowered.compile()
                phases.append((phase, advance_fn, grow_fn))
        fns = (start_fn, phases)
        self._compiled[key] = fns
        logging.info(
            "sample: compiled the decode loop (%d phase(s)) in %.1fs",
            len(plan),
            time.perf_counter() - t0,
        )
        return fns

    def _ds_shardings(self, abstract: DecodeState):
        return None if self.mesh is None else decode_state_shardings(abstract, self.mesh)

    def _jit(self, fn, in_shardings, out_shardings, donate):
        if self.mesh is None:
            return jax.jit(fn, donate_argnums=donate)
        return jax.jit(
            fn, in_shardings=in_shardings, out_shardings=out_shardings, donate_argnums=donate
        )

    def _mesh_context(self):
        return jax.set_mesh(self.mesh) if self.mesh is not None else contextlib.nullcontext()

    def _place(self, x: np.ndarray):
        if self.mesh is None:
            return jnp.asarray(x)
        sharding = batch_sharding(self.mesh, x.ndim)
        return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])

    def generate(
        self,
        batch: PromptBatch,
        sample_ids: np.ndarray,
        seed: int,
        spec: DecodeSpec,
        params: SamplingParams,
        *,
        chunk: int | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> Generation:
        """Runs prefill and the decode loop.

        Args:
          batch: R = B (or 2B with ``spec.cfg``, interleaved cond/uncond) prompt rows.
          sample_ids: int[B], each sample's index (selects its random stream).
          seed: base seed.
          chunk: report progress every ``chunk`` steps (None: one call for the loop).
          progress: called as ``progress(steps_done, max_new_tokens)`` after each chunk.
        """
        sample_ids = np.asarray(sample_ids, np.int32)
        samples = len(sample_ids)
        per_sample = 2 if spec.cfg else 1
        if batch.num_rows != samples * per_sample:
            raise ValueError(
                f"decode: {batch.num_rows} prompt rows for {samples} samples "
                f"({per_sample} row(s) per sample expected)"
            )
        if spec.token_range[1] > self.model_spec.vocab_size:
            raise ValueError(
                f"decode: token_range={spec.token_range} goes past the model's vocabulary "
                f"of {self.model_spec.vocab_size}"
            )
        arrays = [batch.tokens, batch.positions, batch.segment_ids, batch.lengths, sample_ids]
        pad = -samples % self.row_multiple
        if pad:  # repeat the last sample; its copies are dropped below
            arrays = [
                np.concatenate([a, np.repeat(a[-k:], pad, axis=0)])
                for a, k in zip(arrays, [per_sample] * 4 + [1])
            ]
        inputs = tuple(self._place(a) for a in arrays)
        if not 0 <= int(seed) < 2**32:
            raise InputError(f"decode: seed={seed} must be an integer in [0, 2**32)")
        seed = np.uint32(seed)
        start, phases = self._functions(spec, inputs, seed, params)
        total = spec.max_new_tokens
        t0 = time.perf_counter()
        self.runs += 1
        with self._mesh_context():
            ds = start(self.state, *inputs, seed, params)
            steps, p, finished = 1, 0, False
            while steps < total and not finished:
                stop = total if chunk is None else min(steps + chunk, total)
                while steps < stop:  # across phases: each call stays inside one
                    phase, advance, _ = phases[p]
                    if steps >= phase.end:
                        p += 1
                        ds = phases[p][2](ds)  # grow the cache into the next phase
                        continue
                    target = min(stop, phase.end)
                    ds = advance(self.state, ds, params, np.int32(target))
                    steps = int(ds.step)
                    if steps < target:  # every row has finished
                        finished = True
                        break
                if progress is not None:
                    progress(steps, total)
            tokens = _to_host(ds.tokens)[:samples]
        return Generation(tokens=tokens, steps=steps, seconds=time.perf_counter() - t0)
