"""The serving server under load and bad clients, and every request shape of TF Serving's REST predict API."""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from typing import Any

import pytest

from kitlib import serving
from conftest import http_json


def echo(request: dict) -> dict:
    """A model that needs no TensorFlow: it hands the instances back."""
    return {"predictions": request["instances"]}


@pytest.fixture
def echo_server():
    with serving.ModelServer({"echo": echo}) as running:
        yield running


def raw(url: str, data: bytes, timeout: float = 10) -> tuple[int, dict]:
    """Send raw bytes; return (status, JSON body) of the answer."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)  # the client has said all it will say
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    assert b"Content-Type: application/json" in head, head
    return int(head.split()[1]), json.loads(body)


def test_200_concurrent_requests_all_succeed(echo_server) -> None:
    url = f"{echo_server.url}/v1/models/echo:predict"
    start = threading.Barrier(200)
    results: list[Any] = [None] * 200

    def one(i: int) -> None:
        start.wait()
        try:
            results[i] = http_json(url, json.dumps({"instances": [i]}).encode())
        except OSError as exc:
            results[i] = exc

    threads = [threading.Thread(target=one, args=(i,)) for i in range(200)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert results == [(200, {"predictions": [i]}) for i in range(200)]


def test_work_in_progress_is_bounded() -> None:
    active, peak, lock = [0], [0], threading.Lock()

    def slow(request: dict) -> dict:
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.2)
        with lock:
            active[0] -= 1
        return {"predictions": []}

    with serving.ModelServer({"slow": slow}) as running:
        threads = [threading.Thread(target=http_json, args=(f"{running.url}/v1/models/slow:predict", b'{"instances": []}'))
                   for _ in range(12)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    assert peak[0] == serving.Limits().parallel


@pytest.mark.parametrize("body, message", [
    (b"[" * 100_000, "nested too deeply"),
    (b'{"instances": [' + b"7" * 5000 + b"]}", "not valid JSON"),
    (b'{"instances": "caf\xe9"}', "not UTF-8"),
    (b"[1, 2]", "must be a JSON object"),
])
def test_bad_bodies_are_400_with_a_reason(echo_server, body: bytes, message: str) -> None:
    status, answer = http_json(f"{echo_server.url}/v1/models/echo:predict", body)
    assert status == 400 and message in answer["error"]


@pytest.mark.parametrize("request_bytes, status, message", [
    (b"POST /v1/models/echo:predict HTTP/1.1\r\nContent-Length: abc\r\n\r\n{}", 400, "Content-Length must be"),
    (b"POST /v1/models/echo:predict HTTP/1.1\r\nConnection: close\r\n\r\n", 411, "needs a Content-Length"),
    (b"POST /v1/models/echo:predict HTTP/1.1\r\nContent-Length: 50\r\n\r\n{}", 400, "ended after 2 of the 50"),
    (b"BREW /v1/models/echo HTTP/1.1\r\n\r\n", 501, "Unsupported method"),
    (b"POST /v1/models/echo:predict HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400, "bad chunk size"),
])
def test_protocol_errors_are_json(echo_server, request_bytes: bytes, status: int, message: str) -> None:
    got, answer = raw(echo_server.url, request_bytes)
    assert got == status and message in answer["error"]


def test_a_chunked_body_is_read(echo_server) -> None:
    body = b'{"instances": [1, 2, 3]}'
    chunked = b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n" % (5, body[:5], len(body) - 5, body[5:])
    got, answer = raw(echo_server.url, b"POST /v1/models/echo:predict HTTP/1.1\r\nConnection: close\r\n"
                                       b"Transfer-Encoding: chunked\r\n\r\n" + chunked)
    assert (got, answer) == (200, {"predictions": [1, 2, 3]})


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
def test_other_methods_get_a_json_405(echo_server, method: str) -> None:
    status, answer = http_json(f"{echo_server.url}/v1/models/echo:predict", b"{}", method=method)
    assert status == 405 and "use GET for status, POST to predict" in answer["error"]


def test_a_body_over_the_limit_gets_its_413() -> None:
    with serving.ModelServer({"echo": echo}, limits=serving.Limits(body_bytes=1000)) as running:
        status, answer = http_json(f"{running.url}/v1/models/echo:predict", b'{"instances": [' + b"1," * 2000 + b"1]}")
        assert status == 413 and "over the 1000 byte limit" in answer["error"]
        assert http_json(f"{running.url}/v1/models/echo:predict", b'{"instances": [1]}')[0] == 200


def test_versions_other_than_1_are_404(echo_server) -> None:
    assert http_json(f"{echo_server.url}/v1/models/echo/versions/1:predict", b'{"instances": [1]}')[0] == 200
    status, answer = http_json(f"{echo_server.url}/v1/models/echo/versions/7:predict", b'{"instances": [1]}')
    assert status == 404 and "Specific(echo, 7)" in answer["error"]
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(f"{echo_server.url}/v1/models/echo/versions/2", timeout=10)
    assert raised.value.code == 404


def stall(url: str) -> socket.socket:
    """A client that announces a body and never sends it."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)))
    sock.sendall(b"POST /v1/models/echo:predict HTTP/1.1\r\nContent-Length: 100\r\n\r\n{")
    return sock


def test_stalled_clients_time_out_and_cannot_pin_the_workers() -> None:
    with serving.ModelServer({"echo": echo}, workers=2, limits=serving.Limits(read_seconds=0.5)) as running:
        stalled = [stall(running.url) for _ in range(4)]
        start = time.monotonic()
        assert http_json(f"{running.url}/v1/models/echo:predict", b'{"instances": [1]}')[0] == 200
        assert time.monotonic() - start < 5
        for sock in stalled:
            sock.close()


def test_shutdown_closes_stalled_connections_promptly() -> None:
    server = serving.ModelServer({"echo": echo}, limits=serving.Limits(read_seconds=600, request_seconds=600))
    with server:
        stalled = [stall(server.url) for _ in range(3)]
        time.sleep(0.2)  # let the workers block on the bodies
        start = time.monotonic()
    assert time.monotonic() - start < 3
    for sock in stalled:
        sock.settimeout(5)  # a connection the server still holds would time out here
        try:
            assert sock.recv(100) == b""
        except ConnectionResetError:
            pass
        sock.close()


# Every request shape of TF Serving's REST API (docs/api_rest.md), on a SavedModel with named inputs.

@pytest.fixture(scope="module")
def shapes_model(tmp_path_factory: pytest.TempPathFactory) -> serving.SignaturePredictor:
    import tensorflow as tf

    class Model(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec((None,), tf.string), tf.TensorSpec((None,), tf.float32)])
        def two_inputs(self, image_bytes, scale):
            return {"size": tf.cast(tf.strings.length(image_bytes), tf.float32) * scale}

        @tf.function(input_signature=[tf.TensorSpec((None,), tf.string)])
        def one_input(self, image_bytes):
            return {"size": tf.strings.length(image_bytes)}

        @tf.function(input_signature=[tf.TensorSpec((None,), tf.string)])
        def two_outputs(self, image_bytes):
            return {"size": tf.strings.length(image_bytes), "twice": 2 * tf.strings.length(image_bytes)}

    model = Model()
    path = tmp_path_factory.mktemp("shapes") / "model"
    tf.saved_model.save(model, str(path), signatures={
        "serving_default": model.two_inputs, "one": model.one_input, "two_outputs": model.two_outputs})
    return serving.SignaturePredictor(path)


def b64(data: bytes) -> dict:
    return {"b64": base64.b64encode(data).decode()}


A, B = b64(b"abc"), b64(b"hello")


@pytest.mark.parametrize("request_body, expected", [
    ({"signature_name": "one", "instances": [A, B]}, {"predictions": [3, 5]}),
    ({"signature_name": "one", "instances": [{"image_bytes": A}, {"image_bytes": B}]}, {"predictions": [3, 5]}),
    ({"signature_name": "one", "inputs": [A, B]}, {"outputs": [3, 5]}),
    ({"signature_name": "one", "inputs": {"image_bytes": [A, B]}}, {"outputs": [3, 5]}),
    ({"instances": [{"image_bytes": A, "scale": 2.0}, {"image_bytes": B, "scale": 1.0}]}, {"predictions": [6.0, 5.0]}),
    ({"inputs": {"image_bytes": [A, B], "scale": [2.0, 1.0]}}, {"outputs": [6.0, 5.0]}),
    ({"signature_name": "serving_default", "inputs": {"image_bytes": [A], "scale": [0.5]}}, {"outputs": [1.5]}),
    ({"signature_name": "two_outputs", "instances": [A, B]},
     {"predictions": [{"size": 3, "twice": 6}, {"size": 5, "twice": 10}]}),
    ({"signature_name": "two_outputs", "inputs": [A, B]}, {"outputs": {"size": [3, 5], "twice": [6, 10]}}),
], ids=["row", "row-named", "columnar", "columnar-named", "row-two-inputs", "columnar-two-inputs",
        "signature-default", "row-two-outputs", "columnar-two-outputs"])
def test_every_documented_request_shape(shapes_model, request_body: dict, expected: dict) -> None:
    with serving.ModelServer({"m": shapes_model}) as running:
        assert http_json(f"{running.url}/v1/models/m:predict", json.dumps(request_body).encode()) == (200, expected)


@pytest.mark.parametrize("request_body, message", [
    ({"instances": 5}, '"instances" must be a list'),
    ({"signature_name": "nope", "instances": [A]}, "no signature 'nope'"),
    ({"instances": [{"image_bytes": A}]}, "missing inputs ['scale']"),
    ({"instances": [{"image_bytes": A, "scale": 1.0}, {"image_bytes": B}]}, "every instance must give every input"),
    ({"instances": [{"image_bytes": A, "scale": 1.0, "extra": 1}]}, "unknown inputs ['extra']"),
    ({"inputs": {"image_bytes": [A], "scale": [10 ** 400]}}, "input 'scale' must be float32"),
    ({"signature_name": "one", "instances": [{"b64": "%%%"}]}, "invalid base64"),
])
def test_requests_that_do_not_fit_are_400(shapes_model, request_body: dict, message: str) -> None:
    with pytest.raises(serving.BadRequest, match=message.replace("[", r"\[").replace("]", r"\]")):
        shapes_model(request_body)
