"""Tiny models for the serve tests: an in-memory ``Sampler`` and the same model written
as an HF-format Liquid directory with its VQGAN (for the ``liquid-jax serve`` command)."""

import json
import os
import re
import subprocess
import sys
import threading
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


@pytest.fixture(scope="session")
def serve_url(serve_hf_dir):
    """The URL of ``liquid-jax serve`` on a free port, run as a user would run it."""
    cmd = [sys.executable, "-c", "from liquid_jax.cli import run; run()", "serve"]
    cmd += [f"--hf_dir={serve_hf_dir}", f"--vqgan={serve_hf_dir}/vqgan", "--port=0"]
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": "", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=env)
    lines, found = [], threading.Event()

    def read():  # drains stderr so the server never blocks on a full pipe
        for line in proc.stderr:
            lines.append(line)
            if "serve: listening on http://" in line:
                found.set()

    threading.Thread(target=read, daemon=True).start()
    deadline = time.monotonic() + 120
    while not found.wait(0.2):
        assert proc.poll() is None, "".join(lines)[-3000:]
        assert time.monotonic() < deadline, "serve did not start:\n" + "".join(lines)[-3000:]
    url = re.search(r"listening on (http://\S+)", "".join(lines)).group(1)
    assert url.startswith("http://127.0.0.1:")  # local only unless --host says otherwise
    yield url
    proc.terminate()
    assert proc.wait(30) == 0, "".join(lines)[-3000:]


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
