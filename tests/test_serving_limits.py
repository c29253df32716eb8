"""The REST server bounds every request: time, nesting, numbers, versions, chunks, pixels, clients; and its client's
errors. Each case is one an adversarial probe found answered with a 500, nothing at all, or far too much work."""

from __future__ import annotations

import http.server
import json
import logging
import select
import socket
import struct
import threading
import time
import zlib
from pathlib import Path

import pytest

from kitlib import serving
from kitlib.serving import http as serving_http
from conftest import http_json


def echo(request: dict) -> dict:
    """A model that needs no TensorFlow: it hands the instances back."""
    return {"predictions": request["instances"]}


@pytest.fixture(scope="module")
def echo_server():
    with serving.ModelServer({"echo": echo}) as running:
        yield running


def connect(url: str, source: str = "127.0.0.1") -> socket.socket:
    """A raw connection to the server, from the given loopback address."""
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=10, source_address=(source, 0))


def read_answer(sock: socket.socket, timeout: float = 5) -> tuple[int, dict]:
    """(status, JSON body) of the answer on a connection whose write side may still be open."""
    sock.settimeout(timeout)
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except ConnectionResetError:  # the server closed with our unread bytes in its buffer
        pass
    head, _, body = received.partition(b"\r\n\r\n")
    assert b"Content-Type: application/json" in head, received[:300]
    return int(head.split()[1]), json.loads(body)


def dribble(url: str, data: bytes, every: float) -> tuple[float, tuple[int, dict]]:
    """Send `data` one byte every `every` seconds until the server answers: (seconds until it did, its answer)."""
    sock = connect(url)
    start = time.monotonic()
    with sock:
        for byte in data:
            if select.select([sock], [], [], every)[0]:
                break
            try:
                sock.send(bytes([byte]))
            except OSError:
                break
        return time.monotonic() - start, read_answer(sock)


HEAD = b"POST /v1/models/echo:predict HTTP/1.1\r\n"


@pytest.mark.parametrize("data", [HEAD + b"X-Slow: " + b"a" * 1000,
                                  HEAD + b"Content-Length: 1000\r\n\r\n" + b"[" * 1000],
                         ids=["head", "body"])
def test_a_slowloris_client_is_cut_off_by_the_request_deadline(data: bytes) -> None:
    limits = serving.Limits(read_seconds=2, request_seconds=1)  # each byte comes well within the per-read timeout
    with serving.ModelServer({"echo": echo}, limits=limits) as running:
        seconds, (status, answer) = dribble(running.url, data, every=0.1)
    assert status == 408 and "did not arrive within 1 s" in answer["error"]
    assert seconds < 3


def test_slow_clients_cannot_starve_the_pool() -> None:
    limits = serving.Limits(per_client=2, read_seconds=30, request_seconds=30)
    with serving.ModelServer({"echo": echo}, workers=4, limits=limits) as running:
        stalled = [connect(running.url, source="127.0.0.2") for _ in range(6)]  # one other client, six connections
        for sock in stalled:
            sock.sendall(HEAD + b"Content-Length: 100\r\n\r\n{")
        time.sleep(0.3)  # two of them hold workers; the other four wait their turn, holding none
        start = time.monotonic()
        assert http_json(f"{running.url}/v1/models/echo:predict", b'{"instances": [1]}') == (200, {"predictions": [1]})
        assert time.monotonic() - start < 2
        for sock in stalled:
            sock.close()


def test_one_client_over_its_share_still_gets_every_answer(echo_server) -> None:
    url = f"{echo_server.url}/v1/models/echo:predict"
    results: list = [None] * 40

    def one(i: int) -> None:
        results[i] = http_json(url, json.dumps({"instances": [i]}).encode())

    threads = [threading.Thread(target=one, args=(i,)) for i in range(40)]  # five times Limits().per_client
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert results == [(200, {"predictions": [i]}) for i in range(40)]


def nested(depth: int) -> bytes:
    return b'{"instances": ' + b"[" * depth + b"1" + b"]" * depth + b"}"


@pytest.fixture(scope="module")
def pixels_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SavedModel taking encoded images (and nested lists of them) that answers each one's mean grey level."""
    import tensorflow as tf

    class Model(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec((None,), tf.string)])
        def serve(self, images):
            decode = lambda b: tf.reduce_mean(tf.cast(tf.io.decode_image(b, 1, expand_animations=False), tf.float32))
            return {"mean": tf.map_fn(decode, images, fn_output_signature=tf.float32)}

        @tf.function(input_signature=[tf.TensorSpec(None, tf.float32)])
        def numbers(self, values):
            return {"total": tf.reduce_sum(values)}

    model = Model()
    path = tmp_path_factory.mktemp("pixels") / "model"
    tf.saved_model.save(model, str(path), signatures={"serving_default": model.serve, "numbers": model.numbers})
    return path


@pytest.mark.parametrize("model", ["echo", "saved"])
def test_json_nested_900_deep_is_a_400(pixels_model: Path, model: str) -> None:
    with serving.ModelServer({"echo": echo, "saved": serving.SignaturePredictor(pixels_model, "numbers")}) as running:
        status, answer = http_json(f"{running.url}/v1/models/{model}:predict", nested(900))
        assert status == 400 and "nested too deeply (901 levels" in answer["error"]
        assert http_json(f"{running.url}/v1/models/{model}:predict", nested(3))[0] == 200


def test_brackets_inside_strings_are_no_nesting(echo_server) -> None:
    body = json.dumps({"instances": ["[[[[" * 100, '"]{\\"' * 50]}).encode()
    assert http_json(f"{echo_server.url}/v1/models/echo:predict", body)[0] == 200
    assert serving.codec.json_depth(body) == 2


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity", b"1e400", b"-1E+999"])
def test_non_json_and_overflowing_numbers_are_400(echo_server, literal: bytes) -> None:
    status, answer = http_json(f"{echo_server.url}/v1/models/echo:predict", b'{"instances": [1.5, ' + literal + b"]}")
    assert status == 400 and literal.decode() in answer["error"]


@pytest.mark.parametrize("version", ["7" * 5000, "1e3", "-1", "+1", "", "9" * 19])
def test_versions_are_parsed_with_a_length_limit_on_post_and_get(echo_server, version: str) -> None:
    path = f"{echo_server.url}/v1/models/echo/versions/{version}"
    for status, answer in (http_json(path + ":predict", b'{"instances": [1]}'), http_json(path)):
        assert status == 400 and "a version is a number of 1 to 18 digits" in answer["error"]
    assert http_json(f"{echo_server.url}/v1/models/echo/versions/{'0' * 17}1")[0] == 200  # 18 digits, version 1


def test_a_5000_digit_content_length_is_a_400(echo_server) -> None:
    with connect(echo_server.url) as sock:
        sock.sendall(HEAD + b"Content-Length: " + b"9" * 5000 + b"\r\n\r\n")
        status, answer = read_answer(sock)
    assert status == 400 and "Content-Length must be a number" in answer["error"]


@pytest.mark.parametrize("size_line, status, message", [
    (b"-1", 400, "bad chunk size"),
    (b"0x10", 400, "bad chunk size"),
    (b"1_0", 400, "bad chunk size"),
    (b"%x" % 1001, 413, "over the 1000 byte limit"),
    (b"f" * 40, 400, "bad chunk size"),
])
def test_chunk_sizes_are_checked_before_reading(size_line: bytes, status: int, message: str) -> None:
    with serving.ModelServer({"echo": echo}, limits=serving.Limits(body_bytes=1000, read_seconds=5)) as running:
        with connect(running.url) as sock:
            # The client keeps its side open: a server reading the chunk would wait here rather than answer.
            sock.sendall(HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + size_line + b"\r\n" + b"1" * 500)
            start = time.monotonic()
            got, answer = read_answer(sock)
    assert got == status and message in answer["error"] and time.monotonic() - start < 2


def test_chunks_adding_up_over_the_limit_are_413() -> None:
    chunk = b"%x\r\n%s\r\n" % (400, b" " * 400)
    with serving.ModelServer({"echo": echo}, limits=serving.Limits(body_bytes=1000)) as running:
        with connect(running.url) as sock:
            sock.sendall(HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + chunk * 3)
            status, answer = read_answer(sock)
    assert status == 413 and "over the 1000 byte limit" in answer["error"]


def test_other_transfer_encodings_are_400(echo_server) -> None:
    with connect(echo_server.url) as sock:
        sock.sendall(HEAD + b"Transfer-Encoding: gzip, chunked\r\n\r\n")
        status, answer = read_answer(sock)
    assert status == 400 and "not served" in answer["error"]


def png(width: int, height: int) -> bytes:
    """A real 8-bit greyscale PNG of zeros, compressed row by row (10000x10000 is about 100 KB)."""
    compressor = zlib.compressobj(9)
    row = b"\x00" * (width + 1)  # the filter byte, then the pixels
    pixels = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_an_image_over_the_pixel_cap_is_refused_before_decoding(pixels_model: Path) -> None:
    huge = png(10_000, 10_000)  # 100 megapixels (a ~300 MB decode) in about 100 KB
    assert len(huge) < 400_000
    with serving.ModelServer({"m": serving.SignaturePredictor(pixels_model)}) as running:
        status, answer = http_json(f"{running.url}/v1/models/m:predict", {"instances": [serving.b64(huge)]})
        assert status == 400 and "(10000x10000)" in answer["error"] and "at most 50,000,000 per request" in answer["error"]
        assert http_json(f"{running.url}/v1/models/m:predict", {"instances": [serving.b64(png(40, 30))]}) == \
            (200, {"predictions": [0.0]})


def test_the_pixel_cap_counts_every_image_of_a_request(pixels_model: Path) -> None:
    model = serving.SignaturePredictor(pixels_model, max_pixels=5000)
    assert model({"instances": [serving.b64(png(50, 50))]}) == {"predictions": [0.0]}  # 2,500 pixels
    with pytest.raises(serving.BadRequest, match=r"image 2 of input 'images' \(50x50\) brings the request to 7,500 pixels; the server decodes at most 5,000"):
        model({"instances": [serving.b64(png(50, 50))] * 3})
    with pytest.raises(serving.BadRequest, match="the model rejected the input"):  # no image header: TensorFlow says
        model({"instances": [serving.b64(b"not an image")] * 3})


@pytest.mark.parametrize("target", ["handler", "accept"])
def test_a_failure_inside_the_server_is_logged_and_raised_on_stop(monkeypatch, caplog, target: str) -> None:
    def planted(*args: object) -> None:
        raise RuntimeError("planted fault")

    owner, name = (serving_http._Handler, "parse_request") if target == "handler" else \
        (serving_http._Server, "process_request")
    with pytest.raises(serving.WorkerError, match="1 request.*planted fault") as raised:
        with serving.ModelServer({"echo": echo}) as running:
            monkeypatch.setattr(owner, name, planted)
            with connect(running.url) as sock:
                sock.sendall(HEAD + b"Content-Length: 2\r\n\r\n{}")
                sock.settimeout(5)
                assert sock.recv(100) == b""  # no answer: the connection just closed
            monkeypatch.undo()
            assert http_json(f"{running.url}/v1/models/echo:predict", b'{"instances": [1]}')[0] == 200  # serves on
    assert isinstance(raised.value.__cause__, RuntimeError)
    assert any(r.name == "kitlib.serving" and r.levelno == logging.ERROR and r.exc_info for r in caplog.records)


# The client's own errors.

class Broken(http.server.BaseHTTPRequestHandler):
    """A proxy in front of a dead server: HTML error pages, or a 200 that is not TF Serving's JSON."""

    def do_POST(self) -> None:  # noqa: N802
        status, body = (502, b"<html><h1>Bad Gateway</h1></html>") if "bad" in self.path else (200, b'{"oops": 1}')
        self.send_response(status)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        """Stay quiet."""


@pytest.fixture
def broken_url():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Broken)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_the_client_raises_its_own_errors(echo_server, broken_url: str) -> None:
    with pytest.raises(serving.RequestRefused, match=r"HTTP 404: .*Specific\(echo, 3\)") as refused:
        serving.predict(echo_server.url, "echo", [1], version=3)
    assert refused.value.status == 404 and not isinstance(refused.value, serving.BadRequest)
    with pytest.raises(serving.ServerFailure, match=r"HTTP 502 .* not a JSON object: b'<html><h1>Bad Gateway") as failed:
        serving.predict(broken_url, "bad", [1])
    assert failed.value.status == 502
    with pytest.raises(serving.ServerFailure, match="no predictions in the answer"):
        serving.predict(broken_url, "fine", [1])
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    with pytest.raises(serving.ServerUnreachable, match="is the server running"):
        serving.predict(f"http://127.0.0.1:{port}", "echo", [1], timeout=5)
    with pytest.raises(ValueError, match="replace NaN"):
        serving.predict(echo_server.url, "echo", [float("nan")])
    with pytest.raises(TypeError, match=r"wrap bytes as b64\(data\)"):
        serving.predict(echo_server.url, "echo", [b"raw bytes"])
