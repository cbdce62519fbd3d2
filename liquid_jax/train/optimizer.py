"""AdamW with warmup + cosine / constant schedules, clipping and frozen parameter groups."""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from liquid_jax.errors import ConfigError


def learning_rate_schedule(cfg, total_steps: int) -> optax.Schedule:
    """``cfg``: lr, warmup (fraction of total steps if < 1, else steps), schedule
    ("cosine" | "constant" | "linear"), min_lr_ratio."""
    warmup = cfg.warmup if cfg.warmup >= 1 else round(cfg.warmup * total_steps)
    warmup = int(max(0, min(warmup, total_steps)))
    decay_steps = max(1, total_steps - warmup)
    end = cfg.lr * cfg.get("min_lr_ratio", 0.0)
    if cfg.schedule == "cosine":
        main = optax.cosine_decay_schedule(cfg.lr, decay_steps, alpha=end / cfg.lr if cfg.lr else 0)
    elif cfg.schedule == "linear":
        main = optax.linear_schedule(cfg.lr, end, decay_steps)
    elif cfg.schedule == "constant":
        main = optax.constant_schedule(cfg.lr)
    else:
        raise ConfigError(f"optim.schedule {cfg.schedule!r}: expected cosine, linear or constant")
    if not warmup:
        return main
    return optax.join_schedules([optax.linear_schedule(0.0, cfg.lr, warmup), main], [warmup])


def path_str(path) -> str:
    """A pytree key path as ``"layers.mlp.up_proj.kernel"``."""
    names = [str(getattr(p, "key", getattr(p, "idx", getattr(p, "name", p)))) for p in path]
    if names and names[-1] == "value":  # the array inside an nnx.Variable
        names = names[:-1]
    return ".".join(names)


def trainable_labels(freeze: tuple[str, ...]):
    """A function params -> pytree of "train" / "freeze" (``freeze``: path regexes)."""
    patterns = [re.compile(p) for p in freeze]

    def labels(params):
        return jax.tree_util.tree_map_with_path(
            lambda path, _: (
                "freeze" if any(p.search(path_str(path)) for p in patterns) else "train"
            ),
            params,
        )

    return labels


def decay_mask(params):
    """True for the parameters weight decay applies to: matrices (``*.kernel``, the
    embedding), never norm scales or biases. By name, not by rank: the scanned layers
    stack their norms and biases into arrays of rank 2 and more."""
    return jax.tree_util.tree_map_with_path(
        lambda path, _: path_str(path).endswith(("kernel", "embedding")), params
    )


def keep_rows_below(text_vocab_size: int) -> optax.GradientTransformation:
    """Zeroes the final updates of embedding / LM-head rows below ``text_vocab_size``, so
    that nothing (not weight decay either) moves the rows ``new_rows_only`` keeps."""

    def update(updates, state, params=None):
        del params
        return new_rows_only_grad_mask(updates, text_vocab_size), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def make_optimizer(
    cfg, total_steps: int, params=None, *, new_rows_only_below: int | None = None
) -> optax.GradientTransformation:
    """AdamW as the config says: ``cfg.optim`` has lr, warmup, schedule, b1, b2, eps,
    weight_decay (``decay_mask``: matrices only), grad_clip (0 = off) and freeze (regexes
    of parameter paths, e.g. ``"layers\\."`` to train embeddings only). ``params``
    (optional) lets a freeze list that matches every parameter fail here rather than
    train nothing. ``new_rows_only_below`` (the text vocabulary size): the updates of the
    text rows of the embedding and LM head are zero (the train step also zeroes their
    gradients, ``StepConfig.new_rows_only_below``)."""
    schedule = learning_rate_schedule(cfg, total_steps)
    parts = []
    if cfg.grad_clip:
        parts.append(optax.clip_by_global_norm(cfg.grad_clip))
    parts.append(
        optax.adamw(
            schedule,
            b1=cfg.b1,
            b2=cfg.b2,
            eps=cfg.eps,
            weight_decay=cfg.weight_decay,
            mask=decay_mask,
        )
    )
    tx = optax.chain(*parts)
    freeze = tuple(cfg.get("freeze", ()) or ())
    if freeze:
        labels = trainable_labels(freeze)
        if params is not None and "train" not in jax.tree.leaves(labels(params)):
            raise ConfigError(f"optim.freeze {freeze} freezes every parameter")
        tx = optax.multi_transform({"train": tx, "freeze": optax.set_to_zero()}, labels)
    if new_rows_only_below is not None:
        tx = optax.chain(tx, keep_rows_below(new_rows_only_below))
    return tx


def new_rows_only_grad_mask(grads: nnx.State, text_vocab_size: int) -> nnx.State:
    """Zeroes the gradient of embedding / LM-head rows below ``text_vocab_size``, so only
    the rows added for image codes (and padding) learn: Liquid's optional first stage."""

    def mask(path, g):
        name = path_str(path)
        if name.endswith("embed_tokens.embedding"):
            rows = jnp.arange(g.shape[0])[:, None]
            return jnp.where(rows >= text_vocab_size, g, 0)
        if name.endswith("lm_head.kernel"):
            cols = jnp.arange(g.shape[-1])[None, :]
            return jnp.where(cols >= text_vocab_size, g, 0)
        return g

    return jax.tree_util.tree_map_with_path(mask, grads)
