"""A tokenizer's own chat template (Gemma, Qwen2.5's ChatML, Llama-3, ...), rendered to text.

HF model directories carry the template as ``chat_template`` in
``tokenizer_config.json`` (a string, or a list of named templates), or beside it as
``chat_template.jinja`` / ``chat_template.json``. It is rendered the way transformers'
``apply_chat_template`` does (a sandboxed jinja2 environment with ``trim_blocks`` and
``lstrip_blocks``, ``raise_exception``, a ``tojson`` filter), so the text, and after
encoding the ids, are the ones the model was tuned on. Turning the text into ids (and
images into code blocks) is ``sample.text.chat_ids``.
"""

from __future__ import annotations

import datetime
import functools
import json

import jinja2
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

from liquid_jax import fileio
from liquid_jax.data.tokenizers.base import HF_CONFIG_FILE, read_json
from liquid_jax.errors import InputError

TEMPLATE_FILE = "chat_template.jinja"
TEMPLATE_JSON = "chat_template.json"


def _pick(template, where: str) -> str | None:
    """A template string, or the ``default`` one of a list of ``{name, template}``."""
    if template is None or isinstance(template, str):
        return template
    if isinstance(template, list):
        named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
        if "default" in named:
            return named["default"]
        raise InputError(f"{where}: chat_template lists {sorted(named)} but no 'default'")
    raise InputError(f"{where}: chat_template is a {type(template).__name__}, not a string")


def read_chat_template(directory: str) -> str | None:
    """The chat template of a tokenizer directory, or None when it has none."""
    config = fileio.join(directory, HF_CONFIG_FILE)
    if fileio.exists(config):
        template = _pick(read_json(config).get("chat_template"), config)
        if template:
            return template
    path = fileio.join(directory, TEMPLATE_FILE)
    if fileio.exists(path):
        return fileio.read_text(path, encoding="utf-8")
    path = fileio.join(directory, TEMPLATE_JSON)
    if fileio.exists(path):
        return _pick(read_json(path).get("chat_template"), path)
    return None


def _raise(message: str):
    raise InputError(f"chat template: {message}")


def _tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    # transformers' filter: jinja's own ``tojson`` escapes HTML characters.
    return json.dumps(
        x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
    )


@functools.lru_cache(maxsize=16)
def _compile(template: str) -> jinja2.Template:
    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols]
    )
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise
    env.globals["strftime_now"] = lambda fmt: datetime.datetime.now().strftime(fmt)
    try:
        return env.from_string(template)
    except jinja2.TemplateError as e:
        raise InputError(f"chat template: not a valid jinja2 template: {e}") from None


def render_chat(
    template: str,
    messages: list[dict],
    *,
    special_tokens: dict[str, str],
    add_generation_prompt: bool = True,
) -> str:
    """messages: ``[{"role": "user" | "assistant" | "system", "content": str}, ...]`` ->
    the template's text (special tokens as their names, e.g. ``<start_of_turn>``).

    ``special_tokens``: ``bos_token``, ``eos_token``, ... as the template reads them.
    """
    try:
        return _compile(template).render(
            messages=messages,
            add_generation_prompt=add_generation_prompt,
            tools=None,
            documents=None,
            **special_tokens,
        )
    except jinja2.TemplateError as e:
        raise InputError(f"chat template: rendering failed: {e}") from None
