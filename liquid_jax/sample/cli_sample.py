"""``liquid-jax sample``: generate images or text from a model directory into ``--out``.

    liquid-jax sample --workdir DIR --task t2i --prompt "a red circle" --out OUT
    liquid-jax sample --hf_dir D --vqgan V --task i2t --image cat.png [--prompt "Q?"] --out OUT
    liquid-jax sample --workdir DIR --task text --prompt @prompts.txt --out OUT
    liquid-jax sample --hf_dir Liquid_V1_7B --vqgan chameleon/ --mesh tensor=8 ...  # as released

``--dtype bfloat16|float32`` (default: float32 on CPU, bfloat16 on accelerators) casts
the weights once at load; ``--mesh AXIS=N,...`` shards the model over devices
(``parallel.MeshConfig.parse``). A directory without ``liquid_vocab.json`` (the released
model) takes its layout from its tokenizer and ``config.json``; ``--boi_token``,
``--eoi_token``, ``--uncond_token`` name its special tokens when they are not
``<unused0..2>``.

``--prompt @FILE`` reads one prompt per line. T2I writes ``OUT/sample_000.png``...,
``OUT/grid.png``, ``OUT/codes.npy`` (int32[N, h, w]) and ``OUT/samples.jsonl``; I2T and
text write ``OUT/samples.jsonl`` and ``OUT/samples.txt``. A progress line with tokens/s
is logged while the compiled loop runs (in chunks of ``chunk`` tokens).
"""

from __future__ import annotations

import json
import math
import sys
import time

import numpy as np
from absl import logging
from PIL import Image

from liquid_jax import fileio
from liquid_jax.data.images import open_image
from liquid_jax.errors import ConfigError, InputError, PathNotFoundError
from liquid_jax.evals.grid import image_grid
from liquid_jax.progress import Progress
from liquid_jax.runs.layout import is_train_workdir
from liquid_jax.runs.trained_model import read_run_info
from liquid_jax.sample import t2i as t2i_lib
from liquid_jax.sample import text as text_lib
from liquid_jax.sample.loading import load_for_sampling
from liquid_jax.sample.quantize import MODES as QUANTIZE_MODES

TASKS = ("t2i", "i2t", "text")
CHUNK = 64  # tokens per compiled call between progress lines


def read_prompts(prompt: str | None) -> list[str] | None:
    """``@path`` -> the file's non-empty lines; otherwise ``[prompt]`` (None stays None)."""
    if prompt is None:
        return None
    if prompt.startswith("@"):
        path = prompt[1:]
        if not fileio.isfile(path):
            raise PathNotFoundError(f"sample: prompt file {path} does not exist")
        with fileio.open(path, encoding="utf-8") as f:
            lines = [line.rstrip("\n") for line in f if line.strip()]
        if not lines:
            raise InputError(f"sample: prompt file {path} has no prompts")
        return lines
    return [prompt]


def _save_png(image, path: str) -> None:
    with fileio.local_file(path) as local:  # PIL writes to a file name
        Image.fromarray(image).save(local, format="PNG")


def _write_jsonl(path: str, records: list[dict]) -> str:
    with fileio.open(path, "w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    return path


def _write_texts(out: str, records: list[dict]) -> list[str]:
    txt = fileio.join(out, "samples.txt")
    with fileio.open(txt, "w", encoding="utf-8") as f:
        for r in records:
            f.write(f"### {r['index']}: {r.get('prompt') or r.get('image')}\n{r['output']}\n\n")
    return [_write_jsonl(fileio.join(out, "samples.jsonl"), records), txt]


def run_sample(
    *,
    task: str,
    out: str,
    workdir: str | None = None,
    hf_dir: str | None = None,
    vqgan: str | None = None,
    prompt: str | None = None,
    image: str | None = None,
    num_samples: int = 4,
    cfg: float | None = None,
    seed: int = 0,
    grid: str | None = None,
    max_new_tokens: int | None = None,
    temperature: float | None = None,
    top_k: int | None = None,
    top_p: float | None = None,
    cfg_min_p: float | None = None,
    chat: bool = False,
    size_prefix: bool = False,
    batch_size: int = 8,
    chunk: int = CHUNK,
    dtype: str | None = None,
    mesh: str | None = None,
    special_tokens: tuple[str, str, str] | None = None,
    quantize: str | None = None,
    sampler=None,
) -> list[str]:
    """Runs one ``sample`` command; returns the files written. ``sampler`` skips loading.
    ``quantize="int8"`` decodes with weight-only int8 weights (``sample/quantize.py``).

    Cheap checks (task, prompts, image file) come first, then the model is loaded. T2I
    settings left None come from the run's ``run_info.json`` (what it was evaluated with),
    else the reference's (``cfg`` 7.0; ``cfg`` 1 turns guidance off). A task the run
    never trained on gets a one-line warning on stderr.
    """
    if task not in TASKS:
        raise ConfigError(f"sample: --task={task!r}; use one of {TASKS}")
    prompts = read_prompts(prompt)
    if task in ("t2i", "text") and not prompts:
        raise ConfigError(f"sample: --task={task} needs --prompt")
    if task == "i2t":
        if not image:
            raise ConfigError("sample: --task=i2t needs --image")
        open_image(image)  # a missing or broken file fails here, before any loading
    if grid is not None:
        grid = t2i_lib.parse_grid(grid)
    if quantize is not None and quantize not in QUANTIZE_MODES:
        raise ConfigError(f"sample: --quantize={quantize}; use one of {QUANTIZE_MODES}")
    tasks, evaluated = run_settings(workdir)
    warn_unseen_task(task, prompts, tasks)
    evaluated = evaluated if task == "t2i" else {}
    cfg = evaluated.get("cfg", t2i_lib.CFG_SCALE) if cfg is None else cfg
    cfg_min_p = evaluated.get("cfg_min_p", 0.0) if cfg_min_p is None else cfg_min_p
    temperature = evaluated.get("temperature") if temperature is None else temperature
    top_k = evaluated.get("top_k") if top_k is None else top_k
    top_p = evaluated.get("top_p") if top_p is None else top_p
    if sampler is None:
        sampler = load_for_sampling(
            workdir,
            hf_dir=hf_dir,
            vqgan=vqgan,
            size_prefix=size_prefix,
            batch_size=batch_size,
            dtype=dtype,
            mesh=mesh,
            special_tokens=special_tokens,
            quantize=quantize,
        )
    fileio.makedirs(out)
    if task == "t2i":
        settings = dict(num_samples=num_samples, grid=grid, cfg_scale=cfg, seed=seed, chunk=chunk)
        settings.update(temperature=temperature, top_k=top_k, top_p=top_p, cfg_min_p=cfg_min_p)
        return _t2i(sampler, out, prompts, **settings)
    t0 = time.perf_counter()
    new = max_new_tokens or text_lib.MAX_NEW_TOKENS
    if task == "i2t":
        progress = _token_progress("i2t", 1)
        texts = sampler.i2t(
            [image],
            prompts[0] if prompts else None,
            max_new_tokens=new,
            chunk=chunk,
            progress=progress,
        )
        records = [dict(index=0, image=image, prompt=prompts[0] if prompts else None)]
    else:
        progress = _token_progress("text", len(prompts) * num_samples)
        texts = sampler.text(
            prompts,
            max_new_tokens=new,
            chat=chat,
            temperature=temperature or 0.0,
            top_k=top_k or 0,
            top_p=1.0 if top_p is None else top_p,
            seed=seed,
            num_samples=num_samples,
            chunk=chunk,
            progress=progress,
        )
        records = [
            dict(index=i, prompt=p, seed=seed)
            for i, p in enumerate(p for p in prompts for _ in range(num_samples))
        ]
    for record, text in zip(records, texts):
        record["output"] = text
    logging.info("sample %s: %d outputs in %.1fs", task, len(texts), time.perf_counter() - t0)
    return _write_texts(out, records)


# What each task a run may have trained is, for the warning before an unseen one.
_TASK_WORDS = {
    "t2i": "text-to-image (--task t2i)",
    "i2t": "captioning (--task i2t without --prompt)",
    "vqa": "questions about an image (--task i2t with --prompt: the VQA chat format)",
    "text": "text (--task text)",
}


def run_settings(workdir: str | None) -> tuple[list[str] | None, dict]:
    """``(tasks trained, T2I settings it was evaluated with)`` from a train workdir's
    ``run_info.json``; ``(None, {})`` for an HF directory or a run that recorded none."""
    if not workdir or not is_train_workdir(workdir):
        return None, {}
    info = read_run_info(workdir)
    return info.get("tasks"), info.get("sampling", {}).get("t2i", {})


def warn_unseen_task(task: str, prompts: list[str] | None, tasks: list[str] | None) -> None:
    """One line on stderr when ``task`` (i2t with a question: VQA) is not in ``tasks``."""
    asked = "vqa" if task == "i2t" and prompts else task
    if tasks is None or asked in tasks:
        return
    trained = ", ".join(_TASK_WORDS[t] for t in tasks if t in _TASK_WORDS) or "no task"
    print(f"liquid-jax sample: warning: this run never trained on {_TASK_WORDS[asked]}; "
          f"it trained on {trained}. Expect poor output.", file=sys.stderr)  # fmt: skip


def _token_progress(task: str, rows: int):
    """The samplers' ``progress(done, total)`` callback (decode steps of ``rows`` rows at
    once) as a progress line of tokens."""
    line = Progress(0, unit="token", every_s=5.0, label=f"sample {task}")
    return lambda done, total: line(done * rows, total * rows)


def _t2i(sampler, out: str, prompts: list[str], **settings) -> list[str]:
    """T2I with the reference defaults for any setting left None; writes the PNGs."""
    if sampler.vqgan is None:
        raise ConfigError("sample: --task=t2i needs a VQGAN to write images: pass --vqgan")
    t0 = time.perf_counter()
    defaults = dict(temperature=t2i_lib.TEMPERATURE, top_k=t2i_lib.TOP_K, top_p=t2i_lib.TOP_P)
    for name, value in defaults.items():
        if settings[name] is None:
            settings[name] = value
    rows = (
        len(prompts)
        * settings["num_samples"]
        * (2 if t2i_lib.uses_cfg(settings["cfg_scale"]) else 1)
    )
    result = sampler.t2i(prompts, progress=_token_progress("t2i", rows), **settings)
    seed, cfg = settings["seed"], settings["cfg_scale"]

    written, records = [], []
    for i, (img, caption) in enumerate(zip(result.images, result.prompts)):
        path = fileio.join(out, f"sample_{i:03d}.png")
        _save_png(img, path)
        written.append(path)
        records.append(
            dict(
                index=i,
                prompt=caption,
                seed=seed,
                cfg=cfg,
                cfg_min_p=settings["cfg_min_p"],
                file=path,
                grid=list(result.codes.shape[1:]),
            )
        )
    grid_path = fileio.join(out, "grid.png")
    cols = math.ceil(math.sqrt(len(result.images)))  # near square
    _save_png(image_grid(result.images, cols), grid_path)
    codes_path = fileio.join(out, "codes.npy")
    with fileio.local_file(codes_path) as local:
        np.save(local, result.codes)
    jsonl = _write_jsonl(fileio.join(out, "samples.jsonl"), records)
    logging.info(
        "sample t2i: %d images in %.1fs -> %s", len(written), time.perf_counter() - t0, out
    )
    return [*written, grid_path, codes_path, jsonl]
