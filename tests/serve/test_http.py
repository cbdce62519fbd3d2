"""The serve API over plain HTTP against an in-process server on a free port: results
equal the ``Sampler``'s own, bad input gets 400 / 413 with a message, requests queue."""

import base64
import io
import socket
import threading
import urllib.error
import urllib.request

import numpy as np
import pytest
from PIL import Image

from liquid_jax.errors import ConfigError
from liquid_jax.serve import Limits, make_server, tasks
from liquid_jax.serve.cli_serve import run_serve
from tests.serve.conftest import finish, request

LIMITS = Limits(max_body_bytes=64 * 1024, max_pixels=64 * 64, max_images=4, max_new_tokens=16)


@pytest.fixture(scope="module")
def server(serve_sampler):
    server = make_server(serve_sampler, port=0, limits=LIMITS).start()
    yield server
    server.stop()


@pytest.fixture
def base(server):
    return server.url


def png_bytes(size=(20, 20), seed=0) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def decode_data_url(url: str) -> np.ndarray:
    head, data = url.split(",", 1)
    assert head == "data:image/png;base64"
    image = Image.open(io.BytesIO(base64.b64decode(data)))
    assert image.format == "PNG"
    return np.asarray(image)


def submit(base, path, body, content_type=None):
    status, job = request(base + path, body, content_type)
    assert status == 202, job
    return finish(base, job)


def test_page_info_and_unknown_paths(base):
    status, page = request(base + "/")
    assert status == 200 and b'id="t2i-prompt"' in page and b'src="/app.js"' in page
    status, script = request(base + "/app.js")
    assert status == 200 and b"/api/t2i" in script
    status, info = request(base + "/api/info")
    assert status == 200 and info["image_size"] == [16, 16] and info["image_codes"] == 64
    assert info["t2i"]["top_k"] == 64 and info["limits"]["max_images"] == 4
    for path in ("/../setup.py", "/static/page.html", "/api/jobs/../../setup.py", "/api/jobs/x"):
        status, answer = request(base + path)
        assert status == 404 and "error" in answer, path
    # Another site's name pointed at 127.0.0.1 (DNS rebinding) is refused.
    req = urllib.request.Request(base + "/api/info", headers={"Host": "evil.example:80"})
    with pytest.raises(urllib.error.HTTPError, match="403"):
        urllib.request.urlopen(req, timeout=30)
    req = urllib.request.Request(base + "/", headers={"Host": "localhost"})
    with urllib.request.urlopen(req, timeout=30) as response:
        assert response.status == 200


def test_t2i_returns_the_samplers_images_as_pngs(base, serve_sampler):
    settings = dict(cfg=3.0, temperature=1.0, top_k=10, seed=3)
    job = submit(base, "/api/t2i", dict(prompt="w1 w2", num_images=3, **settings))
    assert job["status"] == "done", job
    images = np.stack([decode_data_url(u) for u in job["result"]["images"]])
    assert images.shape == (3, 16, 16, 3) and images.dtype == np.uint8
    ref = serve_sampler.t2i(
        "w1 w2", num_samples=3, cfg_scale=3.0, temperature=1.0, top_k=10, seed=3
    )
    np.testing.assert_array_equal(images, ref.images)
    assert job["done"] == job["total"] == 16  # a 4x4 grid: 16 decode steps, all reported


def test_a_runs_recorded_settings_are_the_t2i_defaults(serve_sampler):
    """A train run's ``run_info.json`` settings (the demo judged at CFG 3 with guidance
    among likely codes) replace Liquid's defaults: on the page and for a request
    that leaves them out."""
    evaluated = dict(cfg=3.0, cfg_min_p=0.2, temperature=1.0, top_k=10, top_p=1.0)
    server = make_server(serve_sampler, port=0, limits=LIMITS, evaluated=evaluated).start()
    try:
        status, info = request(server.url + "/api/info")
        assert status == 200 and info["t2i"]["cfg"] == 3.0 and info["t2i"]["top_k"] == 10
        job = submit(server.url, "/api/t2i", dict(prompt="w1 w2", num_images=2, seed=5))
    finally:
        server.stop()
    images = np.stack([decode_data_url(u) for u in job["result"]["images"]])
    ref = serve_sampler.t2i(
        "w1 w2", num_samples=2, cfg_scale=3.0, cfg_min_p=0.2, temperature=1.0, top_k=10,
        top_p=1.0, seed=5,
    )  # fmt: skip
    np.testing.assert_array_equal(images, ref.images)
    other = serve_sampler.t2i("w1 w2", num_samples=2, seed=5)  # Liquid's CFG 7, top-k 4096
    assert not np.array_equal(images, other.images)


def test_i2t_and_vqa_return_the_samplers_text(base, serve_sampler):
    upload = png_bytes((40, 24))  # cropped to the VQGAN's 16x16 as the sampler does
    job = submit(base, "/api/i2t?max_new_tokens=6", upload, "image/png")
    image = Image.open(io.BytesIO(upload))
    assert job["result"]["text"] == serve_sampler.i2t([image], max_new_tokens=6)[0]
    job = submit(base, "/api/i2t?question=w3%20w4&max_new_tokens=6", upload, "image/png")
    assert job["result"] == dict(
        text=serve_sampler.i2t([image], "w3 w4", max_new_tokens=6)[0], question="w3 w4"
    )


def test_chat_returns_the_samplers_reply(base, serve_sampler):
    job = submit(base, "/api/chat", dict(message="w5 w6", max_new_tokens=8))
    reply = serve_sampler.text(["w5 w6"], chat=True, max_new_tokens=8)[0]
    assert isinstance(job["result"]["text"], str) and job["result"]["text"] == reply


@pytest.mark.parametrize(
    "body, message",
    [
        (b"", "no file was sent"),
        (b"%PDF-1.4 not an image at all", "not an image file"),
        (png_bytes((100, 100)), "100x100 is 10000 pixels; at most 4096"),
        (png_bytes()[:60], "unreadable"),
    ],
)
def test_bad_uploads_get_400_with_a_message(base, body, message):
    status, answer = request(base + "/api/i2t", body, "application/octet-stream")
    assert status == 400 and message in answer["error"]


@pytest.mark.parametrize(
    "path, body, message",
    [
        ("/api/t2i", b"{not json", "not JSON"),
        ("/api/t2i", [1, 2], "must be a JSON object"),
        ("/api/t2i", dict(prompt="w1", steps=3), "unknown field(s) steps"),
        ("/api/t2i", dict(prompt="  "), "prompt is empty"),
        ("/api/t2i", dict(prompt="w1", num_images=5), "num_images=5 must be in [1, 4]"),
        ("/api/t2i", dict(prompt="w1", cfg="high"), "cfg must be a number"),
        ("/api/t2i", dict(prompt="w1", seed=-1), "seed=-1 must be in"),
        ("/api/t2i", dict(prompt="w1", top_k=1.5), "top_k must be an integer"),
        ("/api/t2i", dict(prompt="w" * 2001), "at most 2000"),
        ("/api/chat", dict(message="w1", max_new_tokens=17), "max_new_tokens=17"),
        ("/api/i2t?max_new_tokens=many", png_bytes(), "max_new_tokens must be an integer"),
    ],
)
def test_bad_requests_get_400_naming_the_field(base, path, body, message):
    if isinstance(body, list):
        body = str(body).encode()
    status, answer = request(base + path, body, "application/json")
    assert status == 400 and message in answer["error"], answer


def test_oversized_body_is_refused(server, base):
    status, answer = request(base + "/api/i2t", b"\0" * (100 * 1024), "image/png")
    assert status == 413 and answer["error"] == "the request is 100.0 KiB; at most 64.0 KiB"
    status, _ = request(base + "/api/info")  # the server goes on
    assert status == 200
    # Far over the cap: answered from the headers alone, nothing read; no length: 411.
    host, port = server.server_address[:2]
    for headers, answer in [
        ("Content-Length: 900000000", b"HTTP/1.1 413 "),
        ("Transfer-Encoding: chunked", b"HTTP/1.1 411 "),
    ]:
        with socket.create_connection((host, port), timeout=30) as raw:
            raw.sendall(f"POST /api/i2t HTTP/1.1\r\nHost: {host}\r\n{headers}\r\n\r\n".encode())
            assert raw.recv(4096).startswith(answer)


def test_a_prompt_beyond_the_context_fails_its_job_only(base):
    job = submit(base, "/api/t2i", dict(prompt=" ".join(["w1"] * 90), num_images=1))
    assert job["status"] == "error" and "t2i" in job["error"] and "context" in job["error"]
    assert submit(base, "/api/chat", dict(message="w1", max_new_tokens=2))["status"] == "done"


def test_concurrent_requests_are_queued_and_all_complete(server, base, serve_sampler):
    results = {}

    def t2i(seed):
        status, job = request(base + "/api/t2i", dict(prompt="w7", num_images=2, seed=seed))
        results[seed] = (status, job["id"], finish(base, job))

    threads = [threading.Thread(target=t2i, args=(seed,)) for seed in (11, 12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert sorted(results) == [11, 12]
    for seed, (status, _, job) in results.items():
        assert status == 202 and job["status"] == "done"
        ref = serve_sampler.t2i("w7", num_samples=2, seed=seed).images
        np.testing.assert_array_equal([decode_data_url(u) for u in job["result"]["images"]], ref)
    # One worker: whichever ran second started after the first had finished.
    first, second = sorted((server.app.queue.get(r[1]) for r in results.values()),
                           key=lambda job: job.started)  # fmt: skip
    assert first.finished <= second.started


def test_serve_command_errors(serve_hf_dir):
    with pytest.raises(ConfigError, match="needs --hf_dir"):
        run_serve()
    with pytest.raises(ConfigError, match="--port=70000"):
        run_serve(hf_dir=serve_hf_dir, port=70000)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        with pytest.raises(ConfigError, match="cannot listen on 127.0.0.1"):
            run_serve(hf_dir=serve_hf_dir, port=busy.getsockname()[1])


def test_t2i_progress_is_reported_after_every_chunk(serve_sampler):
    reports = []
    settings = dict(num_samples=3, batch_size=2, seed=0)  # two batches, as compiled above
    out = tasks.run_t2i(serve_sampler, "w7", (4, 4), settings, lambda *r: reports.append(r))
    assert len(out["images"]) == 3
    # 16 steps a batch in chunks of 1 (16 / CHUNKS), the first step drawn by the prefill.
    assert reports == [(b * 16 + s, 32) for b in range(2) for s in range(2, 17)]


def test_the_serve_command_answers_over_http(serve_url, serve_sampler):
    status, info = request(serve_url + "/api/info")
    assert status == 200 and info["image_size"] == [16, 16]
    job = submit(serve_url, "/api/chat", dict(message="w2 w9", max_new_tokens=6))
    assert job["result"]["text"] == serve_sampler.text(["w2 w9"], chat=True, max_new_tokens=6)[0]
