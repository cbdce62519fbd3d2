"""A sweep's results: each run's final metrics (from ``metrics.jsonl``) in one CSV, a
markdown table and, when an axis is numeric, a plot of the validation losses against it."""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path

# Columns of the markdown table, in order, when some run has them.
LOSSES = ["loss", "val_loss", "loss_text", "loss_t2i", "loss_i2t",
          "val_loss_text", "val_loss_t2i", "val_loss_i2t", "val_loss_vqa"]  # fmt: skip
SPEED = ["tokens_per_s", "wall_s"]


def final_metrics(workdir: str | Path) -> dict[str, float] | None:
    """The last value of every metric in ``workdir/metrics.jsonl`` (train and eval rows
    are separate lines of the same step) plus ``step``: the last step logged."""
    path = Path(workdir) / "metrics.jsonl"
    if not path.is_file():
        return None
    out: dict[str, float] = {}
    with open(path) as f:
        for line in f:
            if not line.strip():
                continue
            row = json.loads(line)
            out.update({k: v for k, v in row.items() if v is not None})
    return out or None


def error_tail(log: str | Path, lines: int = 3) -> str:
    """The exception line of a failed run's log (else its last lines), on one line."""
    try:
        text = Path(log).read_text(errors="replace").splitlines()
    except OSError:
        return "no log"
    text = [t.strip() for t in text if t.strip()]
    errors = [t for t in text if ("Error" in t or "Exception" in t) and not t.startswith("File")]
    return " | ".join(errors[-1:] or text[-lines:])[-300:]


def _key_labels(keys: Sequence[str]) -> dict[str, str]:
    """Column labels for swept keys: the key, without ``model.spec.`` (``hidden_size``)."""
    return {k: k.removeprefix("model.spec.") for k in keys}


def _fmt(value) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "-"
        digits = 4 if abs(value) < 10 else 1 if abs(value) < 1000 else 0
        return f"{value:.{digits}f}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def _value(value) -> str:
    return "-" if value is None else _fmt(f"{value:g}" if isinstance(value, float) else value)


def write_csv(rows: list[dict], path: str | Path) -> None:
    columns = list(dict.fromkeys(k for r in rows for k in r))
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns)
        w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k, "") for k in columns})


def markdown_table(rows: list[dict], keys: Sequence[str]) -> str:
    """One row per run: name, status, swept values, final losses, speed, error."""
    labels = _key_labels(keys)
    metrics = [m for m in LOSSES + SPEED if any(m in r for r in rows)]
    cols = ["name", "status", *keys, "step", *metrics]
    if any(r.get("error") for r in rows):
        cols.append("error")
    head = ["name", "status", *(labels[k] for k in keys), "step", *metrics]
    head += ["error"] if "error" in cols else []
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        # Swept values as written (1e-05 stays 1e-05); metrics with fixed decimals.
        cells = [_fmt(r.get(c)) if c not in keys else _value(r.get(c)) for c in cols]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _numeric_axis(rows: list[dict], keys: Sequence[str], prefer: str | None) -> str | None:
    def numeric(k):
        vals = [r.get(k) for r in rows]
        ok = all(isinstance(v, int | float) and not isinstance(v, bool) for v in vals)
        return ok and len(set(vals)) > 1

    if prefer and prefer in keys and numeric(prefer):
        return prefer
    return next((k for k in keys if numeric(k)), None)


def _tied(rows: list[dict], x: str, k: str) -> bool:
    """``k`` moves together with ``x`` (one value of k per value of x and back)."""
    pairs = {(repr(r.get(x)), repr(r.get(k))) for r in rows}
    return len(pairs) == len({p[0] for p in pairs}) == len({p[1] for p in pairs})


def _group_label(rows: list[dict], others: Sequence[str], labels: dict[str, str]) -> str:
    """The name parts every run of the group shares (``h64-L2-text``, ``h128-L2-text``
    -> ``L2-text``), else the values of the keys that define the group."""
    parts = [set(r["name"].split("-")) for r in rows]
    common = [p for p in rows[0]["name"].split("-") if all(p in s for s in parts)]
    if common and len(rows) > 1:
        return "-".join(common)
    return ", ".join(f"{labels[k]}={_value(rows[0].get(k))}" for k in others) or rows[0]["name"]


def group_labels(groups: Sequence[list[dict]], others: Sequence[str],
                 labels: dict[str, str]) -> list[str]:  # fmt: skip
    """One legend label per group (per line of the plot): the shared name parts, unless
    two groups share them (their runs' names differ only in what the groups have in
    common); then every label is its keys' values, distinct by construction."""
    names = [_group_label(rs, others, labels) for rs in groups]
    if len(set(names)) < len(names):
        names = [", ".join(f"{labels[k]}={_value(rs[0].get(k))}" for k in others)
                 or rs[0]["name"] for rs in groups]  # fmt: skip
    return names


def plot(rows: list[dict], keys: Sequence[str], path: str | Path, x: str | None = None):
    """Validation losses against the first numeric swept key (or ``x``), one line per
    combination of the other swept keys. Returns the path, or None with no numeric axis
    or no finished run."""
    done = [r for r in rows if r.get("status") == "ok"]
    x = _numeric_axis(done, keys, x)
    if x is None:
        return None
    ys = [m for m in ("val_loss", "val_loss_text", "val_loss_t2i", "val_loss_i2t")
          if any(isinstance(r.get(m), float) for r in done)]  # fmt: skip
    train = ("loss", "loss_text", "loss_t2i", "loss_i2t")
    ys = ys or [m for m in train if any(m in r for r in done)]
    if not ys:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    others = [k for k in keys if k != x and not _tied(done, x, k)]
    groups: dict[tuple, list[dict]] = {}
    for r in done:
        groups.setdefault(tuple(repr(r.get(k)) for k in others), []).append(r)
    labels = _key_labels(keys)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    fig, axes = plt.subplots(1, len(ys), figsize=(4.2 * len(ys), 3.6), squeeze=False)
    handles = {}
    names = group_labels(list(groups.values()), others, labels)
    for ax, y in zip(axes[0], ys):
        for i, (rs, label) in enumerate(zip(groups.values(), names)):
            pts = sorted((r[x], r[y]) for r in rs if isinstance(r.get(y), float))
            if pts:
                (line,) = ax.plot(*zip(*pts), marker="o", color=colors[i % len(colors)])
                handles.setdefault(label, line)
        values = [r[x] for r in done]
        if min(values) > 0 and max(values) / min(values) >= 4:
            ax.set_xscale("log", base=2)
        ax.set_xlabel(labels[x])
        ax.set_title(y)
        ax.grid(alpha=0.3)
    # One legend for all panels: a group missing from a panel keeps its colour elsewhere.
    fig.legend(handles.values(), handles.keys(), loc="center right", fontsize=8)
    fig.tight_layout(rect=(0, 0, 0.88, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)


def write_report(rows: list[dict], keys: Sequence[str], workdir: str | Path, extra: str = "",
                 plot_x: str | None = None) -> dict[str, str]:  # fmt: skip
    """Writes ``sweep_results.{csv,md,png}`` into ``workdir``; returns the paths written."""
    workdir = Path(workdir)
    os.makedirs(workdir, exist_ok=True)
    paths = {"csv": str(workdir / "sweep_results.csv"), "md": str(workdir / "sweep_results.md")}
    write_csv(rows, paths["csv"])
    ok = sum(r.get("status") == "ok" for r in rows)
    text = f"# Sweep results\n\n{ok} of {len(rows)} runs finished. Final values (last logged"
    text += " step); swept keys shown as `-` keep the base config's value.\n\n"
    text += markdown_table(rows, keys)
    png = plot(rows, keys, workdir / "sweep_results.png", plot_x)
    if png:
        paths["png"] = png
        text += "\n![validation losses](sweep_results.png)\n"
    if extra:
        text += "\n" + extra.rstrip() + "\n"
    Path(paths["md"]).write_text(text)
    return paths
