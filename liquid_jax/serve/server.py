"""The HTTP side of ``liquid-jax serve``: the Python standard library's threaded server,
a page of plain HTML and JavaScript, and a small JSON API over one ``JobQueue``.

    GET  /                  the page (static/page.html), /app.js, /style.css
    GET  /api/info          defaults, image size and limits
    POST /api/t2i           {"prompt", "cfg", "temperature", "top_k", "top_p", "seed",
                            "num_images"} -> 202 {"id", "status", "ahead"}
    POST /api/i2t?question=Q&max_new_tokens=N     body: the image file -> 202
    POST /api/chat          {"message", "temperature", "max_new_tokens", "seed"} -> 202
    GET  /api/jobs/ID       {"status": queued|running|done|error, "ahead", "done",
                            "total", "result" | "error"}

A request is checked before it is queued: a bad field or upload is answered 400 with
``{"error": message}``, a body over ``Limits.max_body_bytes`` 413 (unread), a full queue
503. Handler threads only parse and poll; the queue's one worker thread runs the model.
Static files come from a fixed table: no part of a URL is ever used as a path. Served on
a loopback address, a request whose ``Host`` is not a loopback name is refused (403).
"""

from __future__ import annotations

import ipaddress
import json
import threading
import urllib.parse
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from absl import logging

from liquid_jax.sample.api import Sampler
from liquid_jax.sample.t2i import parse_grid
from liquid_jax.serve import tasks
from liquid_jax.serve.jobs import JobQueue, QueueFullError
from liquid_jax.serve.limits import Limits, RequestError

STATIC_DIR = Path(__file__).with_name("static")
# URL -> (file under static/, content type). The only files the server ever reads.
STATIC = {
    "/": ("page.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/style.css": ("style.css", "text/css; charset=utf-8"),
}
DRAIN_FACTOR = 4  # oversized bodies up to this many times the cap are read and dropped
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data: blob:; object-src 'none'; "
        "base-uri 'none'; frame-ancestors 'none'"
    ),
}


def byte_size(n: int) -> str:
    """1536 -> "1.5 KiB", 8388608 -> "8.0 MiB"."""
    for unit, scale in (("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class App:
    """What every request shares: the sampler, its queue, the limits, the static files."""

    def __init__(self, sampler: Sampler, limits: Limits | None = None, grid=None, evaluated=None):
        limits = limits or Limits()
        self.sampler, self.limits = sampler, limits
        if grid is not None:
            grid = parse_grid(grid)
        elif sampler.vqgan is not None:
            grid = sampler.default_grid()
        self.grid = grid or (1, 1)
        self.queue = JobQueue(limits.max_queued, limits.max_kept)
        self.static = {url: (STATIC_DIR / name).read_bytes() for url, (name, _) in STATIC.items()}
        self.defaults = tasks.defaults(sampler, limits, self.grid, evaluated)
        self.info = json.dumps(self.defaults).encode()

    def submit(self, kind: str, job_fn) -> dict:
        job = self.queue.submit(kind, job_fn)
        return self.queue.status(job.id)


class Handler(BaseHTTPRequestHandler):
    server_version = "liquid-jax-serve"
    protocol_version = "HTTP/1.1"
    timeout = 120  # seconds an idle or stalled connection is kept

    @property
    def app(self) -> App:
        return self.server.app

    # -- responses ---------------------------------------------------------------------

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in SECURITY_HEADERS.items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, value) -> None:
        body = value if isinstance(value, bytes) else json.dumps(value).encode()
        self._send(status, body, "application/json")

    def _error(self, status: int, message: str) -> None:
        self._json(status, {"error": message})

    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        logging.vlog(1, "serve: %s %s", self.address_string(), format % args)

    # -- requests ----------------------------------------------------------------------

    def _host_refused(self) -> bool:
        """On a loopback address, a request must name a loopback host: a web page
        elsewhere that re-points its own name at 127.0.0.1 (DNS rebinding) is answered
        403. Answers and returns True when refused."""
        if not is_loopback(self.server.server_address[0]):
            return False
        host = urllib.parse.urlsplit("//" + self.headers.get("Host", "")).hostname or ""
        if host == "localhost" or is_loopback(host):
            return False
        self.close_connection = True
        self._error(HTTPStatus.FORBIDDEN, f"host {host!r} is not this machine's loopback")
        return True

    def do_GET(self):
        if self._host_refused():
            return
        url = urllib.parse.urlsplit(self.path)
        if url.path in STATIC:
            self._send(HTTPStatus.OK, self.app.static[url.path], STATIC[url.path][1])
        elif url.path == "/api/info":
            self._json(HTTPStatus.OK, self.app.info)
        elif url.path.startswith("/api/jobs/"):
            status = self.app.queue.status(url.path.removeprefix("/api/jobs/"))
            if status is None:
                self._error(HTTPStatus.NOT_FOUND, "no such job (finished long ago, or never)")
            else:
                self._json(HTTPStatus.OK, status)
        else:
            self._error(HTTPStatus.NOT_FOUND, f"nothing at {url.path}")

    def do_HEAD(self):
        self.do_GET()

    def do_POST(self):
        if self._host_refused():
            return
        url = urllib.parse.urlsplit(self.path)
        body = self._read_body()
        if body is None:
            return
        parsers = {"/api/t2i": self._t2i, "/api/i2t": self._i2t, "/api/chat": self._chat}
        if url.path not in parsers:
            return self._error(HTTPStatus.NOT_FOUND, f"nothing to POST at {url.path}")
        try:
            job_fn = parsers[url.path](body, urllib.parse.parse_qs(url.query))
            self._json(HTTPStatus.ACCEPTED, self.app.submit(url.path.rsplit("/", 1)[1], job_fn))
        except RequestError as e:
            self._error(HTTPStatus.BAD_REQUEST, str(e))
        except QueueFullError as e:
            self._error(HTTPStatus.SERVICE_UNAVAILABLE, str(e))

    def _read_body(self) -> bytes | None:
        """The request body, or None after answering 411 / 413. An oversized body is
        never stored: up to ``DRAIN_FACTOR`` times the cap is read and dropped (so the
        client gets the answer, not a reset connection), then the connection closes."""
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            self.close_connection = True
            self._error(HTTPStatus.LENGTH_REQUIRED, "the request needs a Content-Length")
            return None
        length, cap = int(length), self.app.limits.max_body_bytes
        if length > cap:
            self.close_connection = True
            left = length if length <= DRAIN_FACTOR * cap else 0
            while left > 0 and (got := len(self.rfile.read(min(2**16, left)))):
                left -= got
            self._error(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                f"the request is {byte_size(length)}; at most {byte_size(cap)}",
            )
            return None
        return self.rfile.read(length)

    def _json_body(self, body: bytes, task: str):
        try:
            return json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise RequestError(f"{task}: the request body is not JSON") from None

    def _t2i(self, body: bytes, query):
        values = self._json_body(body, "t2i")
        return tasks.parse_t2i(
            values, self.app.sampler, self.app.limits, self.app.grid, self.app.defaults["t2i"]
        )

    def _i2t(self, body: bytes, query):
        values = {name: given[-1] for name, given in query.items()}
        return tasks.parse_i2t(body, values, self.app.sampler, self.app.limits)

    def _chat(self, body: bytes, query):
        values = self._json_body(body, "chat")
        return tasks.parse_chat(values, self.app.sampler, self.app.limits)


class Server(ThreadingHTTPServer):
    """``ThreadingHTTPServer`` holding the ``App``; ``start()`` serves from a thread."""

    daemon_threads = True

    def __init__(self, app: App, host: str, port: int):
        super().__init__((host, port), Handler)
        self.app = app
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> Server:
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        self.app.queue.close(timeout=60)


def make_server(
    sampler: Sampler,
    host: str = "127.0.0.1",
    port: int = 8080,
    limits: Limits | None = None,
    grid=None,
    evaluated: dict | None = None,
) -> Server:
    """A ``Server`` bound to ``host:port`` (0: a free port; see ``Server.url``) for
    ``sampler``, with ``limits`` (default ``Limits()``), T2I ``grid`` (default: the
    VQGAN's resolution) and T2I defaults ``evaluated`` (a run's recorded settings)."""
    return Server(App(sampler, limits, grid, evaluated), host, port)
