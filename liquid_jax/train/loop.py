"""``liquid-jax train``: the sharded, resumable Liquid training loop.

Sections: mesh, tokenizer + vocabulary, data, state (created sharded), resume, compiled
steps, loop (metrics, evaluation, checkpoints, preemption, NaN guard).
"""

from __future__ import annotations

import contextlib
import math
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging
from flax import nnx

from liquid_jax import fileio
from liquid_jax.data.pipeline.config import PipelineConfig
from liquid_jax.data.pipeline.dataset import make_iterator, to_global_batch
from liquid_jax.errors import UserError
from liquid_jax.models import Transformer
from liquid_jax.parallel import MeshConfig, any_process, axis_rules, barrier, make_mesh
from liquid_jax.progress import Progress
from liquid_jax.runs.layout import TOKENIZER
from liquid_jax.runs.trained_model import trained_tasks, write_run_info
from liquid_jax.train.checkpoint import Checkpointer
from liquid_jax.train.flops import device_peak_flops, train_flops_per_token
from liquid_jax.train.loss import metrics_from_sums
from liquid_jax.train.metrics import MetricWriter
from liquid_jax.train.optimizer import learning_rate_schedule, make_optimizer
from liquid_jax.train.preemption import PreemptionGuard
from liquid_jax.train.setup import (
    layout_for_run,
    load_initial_weights,
    model_spec,
    resolve_tokenizer,
)
from liquid_jax.train.train_state import create_train_state
from liquid_jax.train.train_step import StepConfig, jit_eval_step, jit_train_step
from liquid_jax.train.validate import check_config, save_config


class NonFiniteError(UserError, RuntimeError):
    """Too many non-finite steps in a row; the last good checkpoint is left as it was."""


def _evaluate(eval_step, state, config, tokenizer, layout, mesh) -> dict[str, float]:
    """Mean validation metrics over ``config.eval_steps`` batches (a fresh pass each time)."""
    it = make_iterator(PipelineConfig.from_config(config.data, validation=True), tokenizer, layout)
    total = None
    try:
        for _ in range(config.eval_steps):
            sums = eval_step(state, to_global_batch(next(it), mesh))
            total = sums if total is None else jax.tree.map(jnp.add, total, sums)
    except StopIteration:
        pass
    finally:
        it.close()
    if total is None:
        return {}
    metrics = metrics_from_sums(total, config.train.max_z_weight)
    return {f"val_{k}": float(v) for k, v in metrics.items()}


def train(config, workdir: str, iterator_fn=make_iterator) -> dict[str, float]:
    """Trains (or resumes) the Liquid model described by ``config`` in ``workdir``.

    ``iterator_fn(data_config, tokenizer, layout)`` makes the training batch iterator
    (``next`` -> host batch, ``get_state``/``set_state``, ``close``); the default is the
    Grain pipeline of ``liquid_jax.data.pipeline.dataset``.

    Returns the last logged metrics. Stable outputs: ``workdir/metrics.jsonl`` (one JSON
    object per logged step with ``step``, ``loss`` and per-task losses) and
    ``workdir/checkpoints/`` (Orbax). A run already at ``total_steps`` returns ``{}``.

    SIGTERM on any process (a preemption) makes every process finish the same step,
    checkpoint it and return (``PreemptionGuard``); so does a NaN abort, which raises
    ``NonFiniteError`` on every process at the same step.
    """
    # A caller feeding its own batches (iterator_fn) may leave the data sources unset.
    check_config(config, workdir, data=iterator_fn is make_iterator)
    # The handler is in place before the slow start (tokenizer, compile): a SIGTERM
    # then stops the run after its first step instead of killing it.
    with PreemptionGuard() as preempt:
        return _train(config, workdir, iterator_fn, preempt)


def _train(config, workdir: str, iterator_fn, preempt: PreemptionGuard) -> dict[str, float]:
    fileio.makedirs(workdir)
    save_config(config, workdir)
    rules = tuple(tuple(r) for r in config.get("axis_rules", ())) or None
    # --- mesh
    mesh = make_mesh(MeshConfig.from_config(config.mesh))
    logging.info(
        "mesh %s over %d devices (%d processes)",
        dict(mesh.shape),
        jax.device_count(),
        jax.process_count(),
    )
    # --- tokenizer and vocabulary
    tokenizer = resolve_tokenizer(config, workdir)
    layout = layout_for_run(config, tokenizer)
    if jax.process_index() == 0:
        layout.save(workdir)
        if not fileio.exists(fileio.join(workdir, TOKENIZER)):
            tokenizer.save(fileio.join(workdir, TOKENIZER))
    # --- data
    data_cfg = PipelineConfig.from_config(config.data)
    train_iter = iterator_fn(data_cfg, tokenizer, layout)
    # --- model and optimizer state, created sharded
    spec = model_spec(config, layout)
    write_run_info(workdir, spec, config.model.get("vqgan", ""), trained_tasks(config.data))
    total_steps = int(config.total_steps)
    train_cfg = config.train
    step_cfg = StepConfig.from_config(train_cfg, layout.text_vocab_size)

    def tx_factory(params):
        return make_optimizer(
            config.optim, total_steps, params, new_rows_only_below=step_cfg.new_rows_only_below
        )

    with axis_rules(rules) if rules else contextlib.nullcontext():
        state_obj = create_train_state(
            lambda: Transformer(spec, rngs=nnx.Rngs(config.seed)), tx_factory, mesh, rules
        )
    logging.info(
        "model: %s, %.1fM parameters",
        spec.family,
        sum(x.size for x in jax.tree.leaves(nnx.state(state_obj.model, nnx.Param))) / 1e6,
    )
    # --- resume, or start from the initial weights
    ckpt = Checkpointer(workdir, keep=config.get("keep_checkpoints", 3))
    graphdef, state = nnx.split(state_obj)
    start = 0
    if ckpt.latest_step() is not None:
        start, state, data_state, _ = ckpt.restore(state)
        train_iter.set_state(data_state["train"])
        logging.info("resumed from step %d", start)
    elif config.model.get("init_from", ""):
        load_initial_weights(config, state_obj.model, mesh)
        graphdef, state = nnx.split(state_obj)
    del state_obj
    if start >= total_steps:
        logging.info("train: already at step %d of %d; nothing to do", start, total_steps)
        ckpt.close()
        train_iter.close()
        return {}
    # --- compiled steps
    with jax.set_mesh(mesh):
        train_step = jit_train_step(graphdef, state, step_cfg, mesh)
        eval_step = jit_eval_step(graphdef, state, mesh, step_cfg.max_z_weight, step_cfg.loss_chunk)
    # --- metrics
    writer = MetricWriter(workdir, resume_step=start)
    tokens_per_step = data_cfg.batch_size * data_cfg.seq_len
    flops_per_step = train_flops_per_token(spec, data_cfg.seq_len) * tokens_per_step
    peak, peak_source = device_peak_flops(override=train_cfg.get("peak_flops", 0.0))
    logging.info(
        "MFU against %.3g FLOP/s per device (%s), %.3g FLOPs per step",
        peak,
        peak_source,
        flops_per_step,
    )
    lr_schedule = learning_rate_schedule(config.optim, total_steps)
    progress = Progress(total_steps, start)
    last: dict[str, float] = {}
    window, t_window = [], time.perf_counter()
    # --- loop
    with jax.set_mesh(mesh):
        for step in range(start, total_steps):
            try:
                host = next(train_iter)
            except StopIteration:
                logging.warning("data exhausted at step %d", step)
                break
            real = float((host["segment_ids"] > 0).mean())
            batch = to_global_batch(host, mesh)
            if step == start:
                # Compile before the first collective, then start together (see barrier).
                train_step = train_step.lower(state, batch).compile()
                barrier(f"liquid_train_compiled_{start}")
            state, metrics = train_step(state, batch)
            window.append((metrics, real))
            done = step + 1
            stop = preempt.should_stop(done)  # the same answer on every process
            final = done == total_steps or stop
            if done % config.log_every_steps == 0 or final:
                values = _window_means(window)
                dt = (time.perf_counter() - t_window) / len(window)
                values.update(
                    step_time_s=dt,
                    tokens_per_s=tokens_per_step / dt,
                    mfu=flops_per_step / dt / (peak * jax.device_count()) if peak else math.nan,
                    lr=float(lr_schedule(step)),
                )
                last = writer.write_scalars(done, values)
                window, t_window = [], time.perf_counter()
                progress.update(done, f"loss {last['loss']:.4f} {last['tokens_per_s']:.0f} tok/s")
                # The count comes from the step's replicated metrics, the same on every
                # process; the vote makes "all raise at this step" hold by construction.
                nonfinite = last["nonfinite_in_a_row"] >= train_cfg.max_nonfinite_steps
                if any_process(nonfinite, f"liquid_nonfinite_{done}"):
                    ckpt.close()
                    raise NonFiniteError(
                        f"{int(last['nonfinite_in_a_row'])} non-finite steps in a row at step "
                        f"{done}; stopping. The last good checkpoint "
                        f"(step {ckpt.latest_step()}) is unchanged in {ckpt.directory}"
                    )
            # A preempted run saves at once (the notice gives seconds), without evaluating.
            at_end = done == total_steps
            if config.eval_every_steps and (done % config.eval_every_steps == 0 or at_end):
                val = _evaluate(eval_step, state, config, tokenizer, layout, mesh)
                if val:
                    writer.write_scalars(done, val)
                    last.update(val)
                    logging.info("eval @%d: %s", done, val)
            if done % config.checkpoint_every_steps == 0 or final:
                ckpt.save(
                    done,
                    state,
                    data_state={"train": train_iter.get_state()},
                    meta={"spec": spec.family},
                    force=True,
                )
            if stop:
                logging.warning("stopped by SIGTERM at step %d (checkpoint saved)", done)
                break
    ckpt.close()
    writer.close()
    train_iter.close()
    return last


def _window_means(window) -> dict[str, float]:
    """Means over the steps since the last log line (device values fetched once)."""
    fetched = jax.device_get([m for m, _ in window])
    keys = fetched[0].keys()
    out = {}
    for k in keys:
        values = np.array([float(f[k]) for f in fetched])
        if k.startswith("loss_"):  # a task absent from a batch gives NaN: skip those
            values = values[np.isfinite(values)]
        out[k] = float(values.mean()) if values.size else math.nan
    out["nonfinite_in_a_row"] = float(fetched[-1]["nonfinite_in_a_row"])
    out["skipped"] = float(sum(float(f["skipped"]) for f in fetched))
    out["fill"] = float(np.mean([r for _, r in window]))
    return out
