"""A model server speaking TensorFlow Serving's REST predict API on 127.0.0.1, with every request bounded.

TensorFlow Serving itself is not installable from PyPI or Debian (only its client API is), so the kit serves the
same request and response format (see `codec`): `POST /v1/models/<name>[/versions/N]:predict` and
`GET /v1/models/<name>[/versions/N]` for the model status. Every error is JSON `{"error": "..."}`: 400 for a bad
request, 404 for an unknown model or version, 405 for other methods, 408 for a request that arrives too slowly,
411 without a body length, 413 for a body over the limit.

The server is built for a classroom laptop under load and for clients that misbehave: a listen backlog of 256, a
bounded pool of worker threads of which at most `Limits.per_client` serve one client address (the others wait
their turn without holding a worker, so slow clients cannot starve the pool) and at most `Limits.parallel`
decode and predict at once; a body limit, a JSON depth limit, a timeout on every read and a deadline for the whole
request; a shutdown that closes the connections still open; and failures inside the server logged to the
`kitlib.serving` logger and raised as a `WorkerError` when the server stops.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import http.server
import io
import json
import logging
import re
import socket
import sys
import threading
import time
from typing import Any, Callable, Mapping

from kitlib.serving import codec
from kitlib.serving.codec import BadRequest
from kitlib.serving.versions import Model, NotFound, Servable, find_servable, parse_version

PREDICT = re.compile(r"^/v1/models/(?P<name>[\w.-]+)(/versions/(?P<version>[^/:]*))?:predict$")
STATUS = re.compile(r"^/v1/models/(?P<name>[\w.-]+)(/versions/(?P<version>[^/]*))?$")
CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,15}")  # a chunk size in hex: no sign, no 0x, no underscores
CONTENT_LENGTH = re.compile(r"[0-9]{1,18}")
_log = logging.getLogger("kitlib.serving")


@dataclasses.dataclass(frozen=True)
class Limits:
    """What one request may cost the server; a request over a limit gets a JSON 4xx that names the limit."""

    body_bytes: int = 8 * 1024 * 1024  # decoded JSON takes ~40x its text in memory: 8 MiB is ~300 MB, or 30+ photos
    json_depth: int = codec.MAX_DEPTH
    read_seconds: float = 10.0  # the longest wait for the next bytes of a request
    request_seconds: float = 30.0  # the longest a whole request (head and body) may take to arrive
    per_client: int = 8  # connections of one client address served at once; its others wait, holding no worker
    parallel: int = 4  # requests decoded and predicted at once; the other workers wait (memory stays bounded)


class HTTPFailure(Exception):
    """An HTTP error answer: status and message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class WorkerError(RuntimeError):
    """Requests failed inside the server without an answer; raised when the server stops, after each was logged."""


def _error(reason: str) -> bytes:
    """TF Serving's error body."""
    return json.dumps({"error": reason}).encode()


class _Reader(io.RawIOBase):
    """A connection's bytes: each read waits at most `read_seconds`, and all of one request `request_seconds`."""

    def __init__(self, sock: socket.socket, limits: Limits) -> None:
        super().__init__()
        self._sock = sock
        self._limits = limits
        self.start()

    def start(self) -> None:
        """Begin a request: its deadline runs from now."""
        self._deadline = time.monotonic() + self._limits.request_seconds
        self.received = 0
        self.timed_out = ""  # why the request was cut off, once it was

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        """Read what has arrived, within the per-read timeout and the request's deadline."""
        left = self._deadline - time.monotonic()
        try:
            if left <= 0:
                raise TimeoutError
            self._sock.settimeout(min(self._limits.read_seconds, left))
            count = self._sock.recv_into(buffer)
        except TimeoutError:
            self.timed_out = (f"the request did not arrive within {self._limits.request_seconds:g} s: send it whole"
                              if time.monotonic() >= self._deadline else
                              f"no bytes came for {self._limits.read_seconds:g} s: the request timed out")
            raise TimeoutError(self.timed_out) from None
        self.received += count
        return count


class _Handler(http.server.BaseHTTPRequestHandler):
    """Routes TF Serving REST paths to the server's models; every failure is a JSON error with a reason."""

    server: "_Server"

    def setup(self) -> None:
        """Read the connection through a `_Reader`, so a slow client is cut off by the request's deadline."""
        super().setup()
        self.rfile.close()
        self._reader = _Reader(self.connection, self.server.limits)
        self.rfile = io.BufferedReader(self._reader)

    def handle_one_request(self) -> None:
        """One request within its deadline; one that stalls part-way gets a 408 (an idle connection just closes)."""
        self._reader.start()
        self._answered = False
        self.command, self.requestline, self.request_version = "", "", self.protocol_version  # until parse_request
        super().handle_one_request()  # http.server closes the connection on a timeout in the request head
        if self._reader.timed_out and self._reader.received and not self._answered:
            self._quietly(self._send, 408, _error(self._reader.timed_out))

    def log_message(self, *args: Any) -> None:
        """Stay quiet: a notebook is no place for access logs (failures go to the `kitlib.serving` logger)."""

    def _send(self, status: int, payload: bytes, headers: dict[str, str] | None = None) -> None:
        """Send a JSON payload, within the per-read timeout."""
        self._answered = True
        self.connection.settimeout(self.server.limits.read_seconds)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def _quietly(self, send: Callable[..., None], *args: Any) -> None:
        """Answer unless the client has gone: then the connection just closes."""
        try:
            send(*args)
        except OSError:
            self.close_connection = True

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own errors (bad request line, unknown method, headers too long) as JSON too."""
        self.close_connection = True
        self._send(code, _error(message or explain or self.responses.get(code, ("error",))[0]))

    def _respond(self, answer: Callable[[], dict]) -> None:
        """Send `answer()` as JSON, or the error it raised as a JSON 4xx (500 for a fault of the server)."""
        try:
            payload = json.dumps(answer()).encode()  # an answer that is not JSON is the server's fault: a 500
            status = 200
        except HTTPFailure as exc:
            status, payload = exc.status, _error(str(exc))
        except BadRequest as exc:
            status, payload = 400, _error(str(exc))
        except NotFound as exc:
            status, payload = 404, _error(str(exc))
        except TimeoutError:
            self.close_connection = True
            status, payload = 408, _error(self._reader.timed_out or "the request timed out")
        except ConnectionError:
            self.close_connection = True
            return
        except Exception as exc:  # noqa: BLE001 - a server must answer, not die; the log keeps the traceback
            _log.exception("a %s %s request failed", self.command, self.path[:200])
            status, payload = 500, _error(f"{type(exc).__name__}: {exc}")
        self._quietly(self._send, status, payload)

    def _servable(self, pattern: re.Pattern) -> tuple[Servable, int | None]:
        """(the model version a path names, the version asked for or None); 404 or 400 as TF Serving answers."""
        match = pattern.match(self.path)
        if not match:
            raise HTTPFailure(404, f"no model at {self.path[:200]}; serving {sorted(self.server.models)}")
        version = None if match["version"] is None else parse_version(match["version"])
        return find_servable(self.server.models, match["name"], version), version

    def _read_chunked(self) -> bytes:
        """A chunked request body, every chunk size checked against the body limit before a byte of it is read."""
        limit = self.server.limits.body_bytes
        parts, total = [], 0
        while True:
            line = self.rfile.readline(1024)
            size_text = line.split(b";")[0].strip()
            if not CHUNK_SIZE.fullmatch(size_text):
                self.close_connection = True
                raise HTTPFailure(400, f"bad chunk size line {line[:40]!r} in a chunked body: a chunk starts with "
                                       "its size in hexadecimal digits")
            size = int(size_text, 16)
            if total + size > limit:
                self.close_connection = True
                raise HTTPFailure(413, f"the chunked request body is over the {limit} byte limit")
            if size == 0:
                while (trailer := self.rfile.readline(1024)).strip():  # trailers, up to the empty line
                    total += len(trailer)
                    if total > limit:
                        self.close_connection = True
                        raise HTTPFailure(413, f"the chunked request body is over the {limit} byte limit")
                return b"".join(parts)
            chunk = self.rfile.read(size)
            if len(chunk) < size or self.rfile.read(2) != b"\r\n":
                self.close_connection = True
                raise HTTPFailure(400, f"a chunk of {size} bytes ended early or without its CRLF")
            parts.append(chunk)
            total += size

    def _body(self) -> bytes:
        """The request body: by Content-Length or chunked, within the limit (a larger one is drained, then 413)."""
        limit = self.server.limits.body_bytes
        encoding = self.headers.get("Transfer-Encoding")
        if encoding is not None:
            if encoding.strip().lower() != "chunked":
                self.close_connection = True
                raise HTTPFailure(400, f"Transfer-Encoding {encoding[:40]!r} is not served: send the body chunked "
                                       "or with a Content-Length")
            return self._read_chunked()
        raw = self.headers.get("Content-Length")
        if raw is None:
            self.close_connection = True
            raise HTTPFailure(411, "a request body needs a Content-Length header (or chunked transfer encoding)")
        if not CONTENT_LENGTH.fullmatch(raw.strip()):
            self.close_connection = True
            raise HTTPFailure(400, f"Content-Length must be a number of bytes, got {raw[:40]!r}")
        length = int(raw)
        if length > limit:
            self.close_connection = True
            while 0 < length <= 4 * limit:  # read and drop it, so the client is listening for the 413
                chunk = self.rfile.read(min(length, 1 << 20))
                length = length - len(chunk) if chunk else 0
            raise HTTPFailure(413, f"request body of {raw.strip()} bytes is over the {limit} byte limit")
        body = self.rfile.read(length)
        if len(body) < length:
            self.close_connection = True
            raise HTTPFailure(400, f"the body ended after {len(body)} of the {length} bytes announced")
        return body

    def _status(self) -> dict:
        """Model status, as TF Serving reports it: every version, or the one asked for."""
        servable, version = self._servable(STATUS)
        ok = {"error_code": "OK", "error_message": ""}
        shown = servable.available if version is None else [servable.version]
        return {"model_version_status": [{"version": str(v), "state": "AVAILABLE", "status": ok} for v in shown]}

    def _predict(self) -> dict:
        """Predict with the version the path names; decoding and predicting take turns (`Limits.parallel`)."""
        servable, _ = self._servable(PREDICT)
        body = self._body()
        with self.server.busy:
            return servable.predictor(codec.parse_request(body, self.server.limits.json_depth))

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        """Model status."""
        self._respond(self._status)

    def do_POST(self) -> None:  # noqa: N802
        """Predict; malformed requests get a 4xx that says why, and the server keeps serving."""
        self._respond(self._predict)

    def _not_allowed(self) -> None:
        """PUT, DELETE, PATCH, HEAD, OPTIONS: 405 with the methods that work."""
        self.close_connection = True
        self._quietly(self._send, 405, _error(f"method {self.command} is not allowed; use GET for status, POST to "
                                              "predict"), {"Allow": "GET, POST"})

    do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _not_allowed


class _Server(http.server.HTTPServer):
    """An HTTP server with a deep backlog, a worker pool shared fairly between clients, and a shutdown that cuts
    live connections."""

    request_queue_size = 256

    def __init__(self, address: tuple[str, int], models: Mapping[str, Model], workers: int, limits: Limits) -> None:
        super().__init__(address, _Handler)
        self.models = dict(models)
        self.limits = limits
        self.busy = threading.BoundedSemaphore(limits.parallel)
        self.failures: list[BaseException] = []
        self._pool = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="kitlib-serving")
        self._live: set[socket.socket] = set()
        self._serving: collections.Counter[str] = collections.Counter()  # connections in the pool, per address
        self._waiting: dict[str, collections.deque] = collections.defaultdict(collections.deque)
        self._lock = threading.Lock()

    def process_request(self, request: socket.socket, client_address: Any) -> None:
        """Hand the connection to the pool, or queue it behind the same client's connections already there."""
        client = client_address[0]
        with self._lock:
            self._live.add(request)
            if self._serving[client] >= self.limits.per_client:
                self._waiting[client].append((request, client_address))
                return
            self._serving[client] += 1
        self._submit(request, client_address)

    def _submit(self, request: socket.socket, client_address: Any) -> None:
        try:
            self._pool.submit(self._work, request, client_address)
        except RuntimeError:  # the pool has shut down: the server is closing
            self._drop(request)

    def _work(self, request: socket.socket, client_address: Any) -> None:
        """Serve one connection, then the next one its client queued."""
        try:
            self.finish_request(request, client_address)
        except OSError:  # the client hung up or stopped sending: nothing to answer
            pass
        except Exception as exc:  # noqa: BLE001 - kept for stop(), so the worker serves on
            self.failed(exc, f"a request from {client_address[0]}")
        finally:
            self._drop(request)
            self._next(client_address[0])

    def _next(self, client: str) -> None:
        """Start the client's next queued connection in the place just freed, or free the place."""
        with self._lock:
            queue = self._waiting.get(client)
            following = queue.popleft() if queue else None
            if queue is not None and not queue:
                del self._waiting[client]
            if following is None:
                self._serving[client] -= 1
                if self._serving[client] <= 0:
                    del self._serving[client]
        if following is not None:
            self._submit(*following)

    def _drop(self, request: socket.socket) -> None:
        with self._lock:
            self._live.discard(request)
        self.shutdown_request(request)

    def failed(self, exc: BaseException, where: str) -> None:
        """Log a failure inside the server and keep it, to be raised when the server stops."""
        _log.error("serving %s failed", where, exc_info=exc)
        with self._lock:
            self.failures.append(exc)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A failure while accepting or queueing a connection (socketserver calls this inside `except`)."""
        self.failed(sys.exc_info()[1], f"a connection from {client_address[0]}")

    def server_close(self) -> None:
        """Stop listening, cut every open or queued connection, and wait for the workers."""
        super().server_close()
        with self._lock:
            live = list(self._live)
            self._waiting.clear()
        for sock in live:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._pool.shutdown(wait=True, cancel_futures=True)
        for sock in live:
            sock.close()


class ModelServer:
    """Serve models on 127.0.0.1 in a background thread; use as a context manager so it always stops.

    `models` maps names to predictors (a `SignaturePredictor`, any callable from request to answer) or to a
    `VersionedModel`. When it stops, failures inside the server that no client was told of raise a `WorkerError`.
    """

    def __init__(self, models: Mapping[str, Model], port: int = 0, workers: int = 16,
                 limits: Limits = Limits()) -> None:
        self._server = _Server(("127.0.0.1", port), models, workers, limits)
        self._thread = threading.Thread(target=self._serve, daemon=True, name="kitlib-serving-accept")

    def _serve(self) -> None:
        try:
            self._server.serve_forever()
        except Exception as exc:  # noqa: BLE001 - kept for stop()
            self._server.failed(exc, "the accept loop")

    @property
    def url(self) -> str:
        """The base URL, e.g. http://127.0.0.1:8501."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def failures(self) -> list[BaseException]:
        """Exceptions inside the server so far that no client was answered about (each also logged)."""
        return list(self._server.failures)

    def __enter__(self) -> "ModelServer":
        self._thread.start()
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        failures = self.failures
        if failures and exc_type is None:
            first = failures[0]
            raise WorkerError(f"{len(failures)} request(s) failed inside the server without an answer (logged to "
                              f"'kitlib.serving'); the first: {type(first).__name__}: {first}") from first
