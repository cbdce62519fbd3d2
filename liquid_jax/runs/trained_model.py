"""A training run's model, read back from its workdir (for sampling, evals and export).

The loop writes ``WORKDIR/run_info.json`` (the model spec and the VQGAN the data was
encoded with) beside ``tokenizer/``, ``liquid_vocab.json`` and ``checkpoints/``; only the
model's arrays are read from a checkpoint, never the optimizer's moments.
"""

from __future__ import annotations

import json

import jax
from flax import nnx
from jax.sharding import Mesh

from liquid_jax import fileio
from liquid_jax.data.tokenizers.base import TextTokenizer
from liquid_jax.data.tokenizers.load import load_tokenizer
from liquid_jax.data.vocab import VocabLayout
from liquid_jax.errors import PathNotFoundError
from liquid_jax.models import Transformer, TransformerSpec
from liquid_jax.parallel import state_shardings
from liquid_jax.runs.checkpoints import restore_subtree
from liquid_jax.runs.layout import RUN_INFO, TOKENIZER


def trained_tasks(data) -> list[str]:
    """The tasks (``formats.TASK_NAMES``) the data section ``data`` of a train config mixes:
    text from ``text_sources``; T2I and I2T from ``image_text_sources`` split by
    ``t2i_fraction``. The pipeline makes no VQA examples."""
    tasks = ["text"] if data.get("text_sources", ()) else []
    if data.get("image_text_sources", ()):
        fraction = float(data.get("t2i_fraction", 1.0))
        tasks += (["t2i"] if fraction > 0 else []) + (["i2t"] if fraction < 1 else [])
    return tasks


def write_run_info(
    workdir: str, spec: TransformerSpec, vqgan: str = "", tasks: list[str] | None = None
) -> None:
    """Process 0 records what the checkpoints hold (written at every run start): the
    spec, the VQGAN, the ``tasks`` trained; sampling settings recorded before are kept."""
    if jax.process_index() != 0:
        return
    path = fileio.join(workdir, RUN_INFO)
    old = read_run_info(workdir) if fileio.exists(path) else {}
    info = {"spec": spec.to_dict(), "vqgan": fileio.absolute(vqgan) if vqgan else ""}
    if tasks is not None:
        info["tasks"] = list(tasks)
    if "sampling" in old:
        info["sampling"] = old["sampling"]
    with fileio.open(path, "w") as f:
        json.dump(info, f, indent=2)


def record_sampling(workdir: str, task: str, settings: dict) -> None:
    """Adds the sampling ``settings`` a run was evaluated with for ``task`` (t2i: ``cfg``,
    ``cfg_min_p``, ``temperature``, ``top_k``, ``top_p``) to its ``run_info.json``;
    ``liquid-jax sample`` takes them as its defaults."""
    if jax.process_index() != 0:
        return
    info = read_run_info(workdir)
    info.setdefault("sampling", {})[task] = dict(settings)
    with fileio.open(fileio.join(workdir, RUN_INFO), "w") as f:
        json.dump(info, f, indent=2)


def read_run_info(workdir: str) -> dict:
    path = fileio.join(workdir, RUN_INFO)
    if not fileio.exists(path):
        raise PathNotFoundError(f"{workdir}: no {RUN_INFO} (not a liquid-jax train workdir)")
    with fileio.open(path) as f:
        return json.load(f)


def load_trained_model(
    workdir: str, step: int | None = None, mesh: Mesh | None = None
) -> tuple[Transformer, VocabLayout, TextTokenizer, int]:
    """``(model, vocab layout, tokenizer, step)`` from a train workdir's checkpoint."""
    spec = TransformerSpec.from_dict(read_run_info(workdir)["spec"])
    graphdef, abstract = nnx.split(nnx.eval_shape(lambda: Transformer(spec, rngs=nnx.Rngs(0))))
    shardings = state_shardings(abstract, mesh) if mesh is not None else None

    def struct(v, s=None):
        return jax.ShapeDtypeStruct(v.shape, v.dtype, sharding=s)

    target = (
        jax.tree.map(struct, abstract, shardings) if mesh is not None
        else jax.tree.map(struct, abstract)
    )  # fmt: skip
    step, state = restore_subtree(workdir, "model", target, step)
    if mesh is None:
        state = jax.tree.map(jax.numpy.asarray, state)
    model = nnx.merge(graphdef, state)
    return (
        model,
        VocabLayout.load(workdir),
        load_tokenizer(fileio.join(workdir, TOKENIZER)),
        step,
    )
