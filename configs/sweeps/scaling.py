"""The paper's scaling study (Liquid, section 4.3) at demo scale on the shapes world.

Model sizes (hidden 64/128/256 x layers 2/4) x training data (text only, T2I only, all
three tasks mixed), on the smoke config's in-memory stream (no prepared data), so two
of the paper's questions can be asked of this implementation on any machine:

- does mixed training cost language modelling less as models grow? (text val loss,
  mixed minus text-only, per size: the paper finds the gap shrinks with scale)
- do generation and understanding help each other? (T2I val loss, mixed minus T2I-only:
  below zero when text + I2T data help image generation)

    python launch/sweep.py --config configs/smoke.py:steps=300 \\
        --sweep configs/sweeps/scaling.py --workdir /tmp/liquid_scaling --parallel 2
    # fewer points: scaling.py:hidden=64/128,layers=2

The validation set is the same for every run (shapes text + image-text, all tasks),
because data mixes are set through the training sources, not the mixing weights (those
would also apply to validation). T2I-only sets t2i_fraction=1, which also applies to
validation, so its I2T validation loss is absent. Note the comparison is at equal steps:
the mixed run spends part of each batch on text and I2T, where the paper adds data.
The learning rate is constant, as in the paper's scaling runs.
"""

from launch.sweep_spec import named, product, sweep
from liquid_jax.config_utils import parse_arg

MIXES = {
    "text": {"config.data.image_text_sources": ()},
    "t2i": {"config.data.text_sources": (), "config.data.t2i_fraction": 1.0},
    "mixed": {},  # text + image-text, 80% of the pairs as T2I, 20% as I2T
}
PLOT_X = "model.spec.hidden_size"


def _size(hidden: int) -> dict:
    """A Gemma-style block of width ``hidden``: 16-wide heads, one KV head, 4x MLP."""
    return named(f"h{hidden}", {
        "config.model.spec.hidden_size": hidden,
        "config.model.spec.intermediate_size": 4 * hidden,
        "config.model.spec.num_heads": hidden // 16,
        "config.model.spec.head_dim": 16,
    })  # fmt: skip


def get_sweep(arg: str = ""):
    args = parse_arg(arg, hidden="64/128/256", layers="2/4", mixes="text/t2i/mixed")
    hidden = [int(h) for h in args.hidden.split("/")]
    layers = [int(n) for n in args.layers.split("/")]
    unknown = set(args.mixes.split("/")) - set(MIXES)
    if unknown:
        raise ValueError(f"mixes {sorted(unknown)} unknown; known: {', '.join(MIXES)}")
    mixes = [named(m, MIXES[m]) for m in args.mixes.split("/")]
    return product(
        [_size(h) for h in hidden],
        sweep("config.model.spec.num_layers", layers, names=[f"L{n}" for n in layers]),
        mixes,
        {"config.optim.schedule": "constant", "config.eval_steps": 8},
    )


def _val(row, key):
    v = row.get(key)
    return v if isinstance(v, float) else None


def _cell(v, signed=False):
    return "-" if v is None else (f"{v:+.3f}" if signed else f"{v:.3f}")


def report(rows) -> str:
    """Per model size: text val loss (text-only vs mixed) and T2I val loss (T2I-only vs
    mixed), with the differences the two questions are about."""
    by = {}
    for r in rows:
        if r.get("status") == "ok":
            size = (r.get("model.spec.hidden_size"), r.get("model.spec.num_layers"))
            by.setdefault(size, {})[r["name"].rsplit("-", 1)[-1]] = r
    lines = [
        "## Mixed vs single-task training, per model size",
        "",
        "Δ = mixed − single-task validation loss. Text Δ > 0 is the language cost of mixed",
        "training (the paper: it shrinks as models grow); T2I Δ < 0 means text and I2T data",
        "help generation.",
        "",
        "| hidden | layers | text: text-only | text: mixed | text Δ "
        "| T2I: T2I-only | T2I: mixed | T2I Δ | I2T: mixed |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for (hidden, layers), runs in sorted(by.items(), key=lambda kv: (kv[0][0] or 0, kv[0][1] or 0)):
        t_only = _val(runs.get("text", {}), "val_loss_text")
        t_mix = _val(runs.get("mixed", {}), "val_loss_text")
        g_only = _val(runs.get("t2i", {}), "val_loss_t2i")
        g_mix = _val(runs.get("mixed", {}), "val_loss_t2i")
        i_mix = _val(runs.get("mixed", {}), "val_loss_i2t")
        dt = t_mix - t_only if None not in (t_mix, t_only) else None
        dg = g_mix - g_only if None not in (g_mix, g_only) else None
        lines.append(
            f"| {hidden} | {layers} | {_cell(t_only)} | {_cell(t_mix)} | {_cell(dt, True)} "
            f"| {_cell(g_only)} | {_cell(g_mix)} | {_cell(dg, True)} | {_cell(i_mix)} |"
        )
    return "\n".join(lines) + "\n"
