"""``liquid-jax serve``: load a model once and serve the page until interrupted.

    liquid-jax serve --hf_dir D --vqgan V [--port 8080] [--host 127.0.0.1]
    liquid-jax serve --workdir DIR          # a train workdir, as ``sample`` takes

Listens on 127.0.0.1 (this machine only) unless ``--host`` says otherwise; ``--port 0``
picks a free port. The line ``serve: listening on http://HOST:PORT`` is logged once the
model is loaded and the socket is open.
"""

from __future__ import annotations

import signal
import threading

from absl import logging

from liquid_jax.errors import ConfigError
from liquid_jax.sample.cli_sample import run_settings
from liquid_jax.sample.loading import load_for_sampling
from liquid_jax.serve.limits import Limits
from liquid_jax.serve.server import make_server

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def run_serve(
    *,
    workdir: str | None = None,
    hf_dir: str | None = None,
    vqgan: str | None = None,
    host: str = "127.0.0.1",
    port: int = 8080,
    grid: str | None = None,
    size_prefix: bool = False,
    batch_size: int = 8,
    dtype: str | None = None,
    mesh: str | None = None,
    special_tokens: tuple[str, str, str] | None = None,
    quantize: str | None = None,
    limits: Limits | None = None,
    stop: threading.Event | None = None,
) -> None:
    """Loads the model, then serves until ``stop`` is set, SIGTERM or Ctrl-C.

    ``dtype``, ``mesh``, ``special_tokens`` and ``quantize`` are ``load_for_sampling``'s
    (a released model as downloaded, bf16 off CPU, sharded over devices, int8 weights).
    """
    if not workdir and not hf_dir:
        raise ConfigError("serve needs --hf_dir (with --vqgan) or --workdir")
    if not 0 <= int(port) < 65536:
        raise ConfigError(f"serve: --port={port} must be in [0, 65535]")
    sampler = load_for_sampling(
        workdir,
        hf_dir=hf_dir,
        vqgan=vqgan,
        dtype=dtype,
        mesh=mesh,
        special_tokens=special_tokens,
        quantize=quantize,
        size_prefix=size_prefix,
        batch_size=batch_size,
    )
    if sampler.vqgan is None:
        logging.warning("serve: no VQGAN found; only chat works (pass --vqgan)")
    try:
        _, evaluated = run_settings(workdir)  # the demo judged its images at CFG 3, not 7
        server = make_server(sampler, host, int(port), limits or Limits(), grid, evaluated)
    except OSError as e:
        raise ConfigError(f"serve: cannot listen on {host}:{port} ({e.strerror or e})") from None
    if host not in LOCAL_HOSTS:
        logging.warning("serve: listening on %s: other machines can reach this page", host)
    stop = stop or threading.Event()
    previous = signal.getsignal(signal.SIGTERM)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
    server.start()
    logging.info("serve: listening on %s", server.url)
    try:
        while not stop.wait(0.5):  # short waits: signals are handled between them
            pass
    except KeyboardInterrupt:
        pass
    finally:
        logging.info("serve: shutting down")
        server.stop()
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, previous)
