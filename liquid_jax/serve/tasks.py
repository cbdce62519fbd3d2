"""The three things the page asks for, as checked requests that run on a ``Sampler``.

``parse_*`` reads a request (a JSON object, or an upload and its question) into a
``functools.partial`` of ``run_*`` with every field checked against ``Limits``; the job
queue later calls it with a progress callback. Generation goes through the ``Sampler``
API only. Progress is honest: the decode loop runs in compiled chunks of ``CHUNKS``
parts, and the callback fires after each one (then the VQGAN decodes, in one call).
"""

from __future__ import annotations

import base64
import functools
import io

import numpy as np
from PIL import Image

from liquid_jax.data.images import resize_center_crop
from liquid_jax.sample import t2i as t2i_lib
from liquid_jax.sample import text as text_lib
from liquid_jax.sample.api import Sampler
from liquid_jax.serve.limits import Fields, Limits, RequestError, read_upload

CHUNKS = 16  # progress updates per decode loop
TEXT_TOKENS = text_lib.MAX_NEW_TOKENS  # I2T / chat default length (Liquid evaluates at 128)


def text_tokens(sampler: Sampler, limits: Limits) -> int:
    """The default I2T / chat length: ``TEXT_TOKENS``, or half the context if shorter
    (the prompt needs the rest), within ``limits.max_new_tokens``."""
    return max(1, min(TEXT_TOKENS, sampler.context // 2, limits.max_new_tokens))


def defaults(
    sampler: Sampler, limits: Limits, grid: tuple[int, int], evaluated: dict | None = None
) -> dict:
    """What the page shows before the first request: settings, sizes and caps.

    ``evaluated``: the T2I settings a train run recorded in ``run_info.json`` (its
    evaluation's CFG scale, top-k, ...); they replace Liquid's defaults."""
    f = sampler.downsample
    evaluated = evaluated or {}
    return dict(
        t2i=dict(
            cfg=evaluated.get("cfg", t2i_lib.CFG_SCALE),
            cfg_min_p=evaluated.get("cfg_min_p", 0.0),
            temperature=evaluated.get("temperature", t2i_lib.TEMPERATURE),
            top_k=min(evaluated.get("top_k", t2i_lib.TOP_K), sampler.layout.num_image_codes),
            top_p=evaluated.get("top_p", t2i_lib.TOP_P),
            seed=0,
            num_images=min(4, limits.max_images),
        ),
        text_tokens=text_tokens(sampler, limits),
        image_size=[grid[1] * f, grid[0] * f],  # width, height
        image_codes=sampler.layout.num_image_codes,
        can_draw=sampler.vqgan is not None,
        limits=dict(
            max_body_bytes=limits.max_body_bytes,
            max_pixels=limits.max_pixels,
            max_images=limits.max_images,
            max_prompt_chars=limits.max_prompt_chars,
            max_new_tokens=limits.max_new_tokens,
        ),
    )


def png_data_url(image: np.ndarray) -> str:
    """uint8[H, W, 3] -> ``data:image/png;base64,...`` (an ``<img>`` can show it)."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _chunk(total_steps: int) -> int:
    return max(1, -(-total_steps // CHUNKS))


# -- text to image -------------------------------------------------------------------------


def parse_t2i(values, sampler: Sampler, limits: Limits, grid: tuple[int, int], d: dict):
    """JSON ``{prompt, cfg, temperature, top_k, top_p, seed, num_images}`` -> the job;
    ``d``: the server's T2I defaults (``defaults(...)["t2i"]``)."""
    if sampler.vqgan is None:
        raise RequestError("t2i: the server has no VQGAN loaded, so it cannot draw images")
    names = {"prompt", "cfg", "temperature", "top_k", "top_p", "seed", "num_images"}
    fields = Fields(values, "t2i", names)
    settings = dict(
        cfg_scale=fields.number("cfg", d["cfg"], 1.0, 100.0),
        cfg_min_p=d["cfg_min_p"],
        temperature=fields.number("temperature", d["temperature"], 0.0, 10.0),
        top_k=fields.number("top_k", d["top_k"], 0, sampler.layout.num_image_codes, True),
        top_p=fields.number("top_p", d["top_p"], 0.01, 1.0),
        seed=fields.number("seed", d["seed"], 0, 2**32 - 1, True),
        num_samples=fields.number("num_images", d["num_images"], 1, limits.max_images, True),
    )
    prompt = fields.text("prompt", limits.max_prompt_chars)
    return functools.partial(run_t2i, sampler, prompt, grid, settings)


def run_t2i(sampler: Sampler, prompt: str, grid, settings: dict, report) -> dict:
    out = sampler.t2i(
        prompt, grid=grid, chunk=_chunk(grid[0] * grid[1]), progress=report, **settings
    )
    images = [png_data_url(image) for image in out.images]
    return dict(images=images, prompt=prompt, seed=settings["seed"])


# -- image to text ---------------------------------------------------------------------


def parse_i2t(upload: bytes, query: dict, sampler: Sampler, limits: Limits):
    """An uploaded image file and the query ``{question, max_new_tokens}`` (strings) ->
    the job. The query is checked first, then the image (``limits.read_upload``)."""
    if sampler.vqgan is None:
        raise RequestError("i2t: the server has no VQGAN loaded, so it cannot read images")
    values = dict(query)
    if str(values.get("max_new_tokens", "")).isdigit():
        values["max_new_tokens"] = int(values["max_new_tokens"])
    fields = Fields(values, "i2t", {"question", "max_new_tokens"})
    question = fields.text("question", limits.max_prompt_chars, required=False)
    new = fields.number(
        "max_new_tokens", text_tokens(sampler, limits), 1, limits.max_new_tokens, True
    )
    # Cropped now as the sampler would (a no-op for it then): a queued job holds a
    # VQGAN-sized image, not a 16-megapixel upload.
    image = resize_center_crop(read_upload(upload, limits), sampler.vqgan.config.resolution)
    return functools.partial(run_i2t, sampler, image, question, new)


def run_i2t(sampler: Sampler, image, question: str | None, max_new_tokens: int, report) -> dict:
    texts = sampler.i2t(
        [image], question, max_new_tokens=max_new_tokens, chunk=_chunk(max_new_tokens),
        progress=report,
    )  # fmt: skip
    return dict(text=texts[0], question=question)


# -- chat ------------------------------------------------------------------------------


def parse_chat(values, sampler: Sampler, limits: Limits):
    """JSON ``{message, temperature, max_new_tokens, seed}`` -> the job (one turn)."""
    fields = Fields(values, "chat", {"message", "temperature", "max_new_tokens", "seed"})
    message = fields.text("message", limits.max_prompt_chars)
    settings = dict(
        temperature=fields.number("temperature", 0.0, 0.0, 10.0),
        max_new_tokens=fields.number(
            "max_new_tokens", text_tokens(sampler, limits), 1, limits.max_new_tokens, True
        ),
        seed=fields.number("seed", 0, 0, 2**32 - 1, True),
    )
    return functools.partial(run_chat, sampler, message, settings)


def run_chat(sampler: Sampler, message: str, settings: dict, report) -> dict:
    chunk = _chunk(settings["max_new_tokens"])
    texts = sampler.text([message], chat=True, chunk=chunk, progress=report, **settings)
    return dict(text=texts[0])
