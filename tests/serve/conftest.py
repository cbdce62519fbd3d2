"""Tiny models for the serve tests: an in-memory ``Sampler`` and the same model written
as an HF-format Liquid directory with its VQGAN (for the ``liquid-jax serve`` command)."""

import json
import os
import time
import urllib.error
import urllib.request

import pytest

from liquid_jax.sample.api import Sampler
from tests.tiny import make_sampling_assets


@pytest.fixture(scope="session")
def serve_assets(tmp_path_factory):
    """(model, layout, tokenizer, vqgan, tokenizer_dir)."""
    directory = str(tmp_path_factory.mktemp("serve_tokenizer"))
    return (*make_sampling_assets(directory), directory)


@pytest.fixture(scope="session")
def serve_sampler(serve_assets):
    model, layout, tokenizer, vqgan, _ = serve_assets
    return Sampler(model, layout, tokenizer, vqgan, batch_size=4)


@pytest.fixture(scope="session")
def serve_hf_dir(serve_assets, tmp_path_factory):
    """An HF-format Liquid directory; its VQGAN in ``vqgan/`` beside the weights."""
    from liquid_jax.export import save_hf, save_vqgan

    model, layout, _, vqgan, tokenizer_dir = serve_assets
    path = str(tmp_path_factory.mktemp("serve_hf"))
    save_hf(model, path, tokenizer=tokenizer_dir)
    layout.save(path)
    save_vqgan(vqgan, os.path.join(path, "vqgan"), formats=("safetensors",))
    return path


def request(url: str, body: bytes | dict | None = None, content_type: str | None = None):
    """GET (no body) or POST -> (HTTP status, decoded JSON or raw bytes)."""
    if isinstance(body, dict):
        body, content_type = json.dumps(body).encode(), "application/json"
    headers = {"Content-Type": content_type} if content_type else {}
    req = urllib.request.Request(url, data=body, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=60) as response:
            status, raw, kind = (
                response.status,
                response.read(),
                response.headers.get_content_type(),
            )
    except urllib.error.HTTPError as e:
        status, raw, kind = e.code, e.read(), e.headers.get_content_type()
    return status, json.loads(raw) if kind == "application/json" else raw


def finish(base: str, job: dict, timeout: float = 120.0) -> dict:
    """Polls a job until it is done or failed; returns its last state."""
    deadline = time.monotonic() + timeout
    while job["status"] in ("queued", "running"):
        assert time.monotonic() < deadline, f"job {job['id']} still {job['status']}"
        time.sleep(0.02)
        status, job = request(f"{base}/api/jobs/{job['id']}")
        assert status == 200, job
    return job
