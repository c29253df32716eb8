"""A small model server speaking TensorFlow Serving's REST predict API, for SavedModels on loopback.

TensorFlow Serving itself is not installable from PyPI or Debian (only its client API is), so the
kit serves the same request and response format: `POST /v1/models/<name>[/versions/1]:predict` with
`{"instances": [...]}` (row format) or `{"inputs": ...}` (columnar), an optional `"signature_name"`,
binary values as `{"b64": "..."}` anywhere in the inputs, and `GET /v1/models/<name>` for the model
status. Every error is JSON `{"error": "..."}`: 400 for a bad request, 404 for an unknown model or
version, 405/501 for other methods, 411 without a body length, 413 for a body over the limit.

`VersionedModel` reads TF Serving's layout, `<model_base_path>/<version>/saved_model.pb`: a request
without `/versions/N` gets the highest version, `/versions/N` a specific one, and the status lists every
version. Like TF Serving (`--file_system_poll_wait_seconds`, 1 s by default), it looks at the base
path again at most once per `poll_seconds`, on the next request, so a new version folder is served
without a restart; a version that fails to load is left out (and retried) while the others keep serving.
Unlike stock TF Serving, whose default policy serves the latest version only, it keeps every version
loaded (TF Serving does that with `model_version_policy { all {} }` in a `--model_config_file`).

The server is built for a classroom laptop under load: a listen backlog of 256, a bounded pool of
worker threads of which at most MAX_PARALLEL decode and predict at once, a body limit, a timeout on
every connection, and a shutdown that closes the connections still open.
"""

from __future__ import annotations

import base64
import concurrent.futures
import http.server
import json
import re
import socket
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable

import numpy as np

MAX_BODY = 8 * 1024 * 1024  # decoded JSON takes ~40x its text in memory: 8 MiB is ~300 MB, and 30+ photos
MAX_PARALLEL = 4  # requests decoded and predicted at once; the other workers wait (memory stays bounded)
DRAIN_LIMIT = 4 * MAX_BODY  # a body over MAX_BODY but under this is read and dropped, so the client gets its 413
VERSION = "1"  # the version a plain predictor (not a VersionedModel) reports and serves
PREDICT = re.compile(r"^/v1/models/(?P<name>[\w.-]+)(/versions/(?P<version>\d+))?:predict$")
STATUS = re.compile(r"^/v1/models/(?P<name>[\w.-]+)(/versions/(?P<version>\d+))?$")


class BadRequest(ValueError):
    """The request does not fit the model's signature; the message says what was expected."""


class HTTPFailure(Exception):
    """An HTTP error answer: status and message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _decode(value: Any) -> Any:
    """Turn TF Serving's {"b64": ...} objects into bytes, recursively (lists and named inputs alike)."""
    if isinstance(value, dict):
        if set(value) == {"b64"}:
            if not isinstance(value["b64"], str):
                raise BadRequest("a {'b64': ...} value must hold a base64 string.")
            try:
                return base64.b64decode(value["b64"], validate=True)
            except ValueError as exc:
                raise BadRequest(f"invalid base64 in a {{'b64': ...}} value: {exc}") from exc
        return {key: _decode(v) for key, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def _json(name: str, array: Any) -> Any:
    """An output as TF Serving writes it: strings as UTF-8 text, `{"b64": ...}` for outputs named `*_bytes`."""
    value = np.asarray(array).tolist()

    def convert(item: Any) -> Any:
        if isinstance(item, list):
            return [convert(v) for v in item]
        if isinstance(item, bytes):
            return b64(item) if name.endswith("_bytes") else item.decode("utf-8", errors="replace")
        return item

    return convert(value)


class SignaturePredictor:
    """Calls the serving signatures of a SavedModel on JSON-decoded inputs (`signature_name` picks one)."""

    def __init__(self, path: str | Path, signature: str = "serving_default") -> None:
        import tensorflow as tf

        self._tf = tf
        self.path = str(path)
        self._loaded = tf.saved_model.load(self.path)
        if signature not in self._loaded.signatures:
            raise ValueError(f"{path} has no signature {signature!r}; it has {sorted(self._loaded.signatures)}.")
        self.signature = signature
        self.inputs = self._inputs(signature)

    def _inputs(self, signature: str) -> dict[str, Any]:
        """The named input specs of one signature."""
        return self._loaded.signatures[signature].structured_input_signature[1]

    def describe(self, signature: str | None = None) -> str:
        """The expected inputs, for error messages."""
        inputs = self._inputs(signature or self.signature)
        return ", ".join(f"{name}: {spec.dtype.name} {spec.shape.as_list()}" for name, spec in inputs.items())

    def _tensor(self, name: str, spec: Any, values: Any) -> Any:
        """One input tensor of the signature's dtype, or a BadRequest that says what was expected."""
        try:
            tensor = self._tf.constant(values, dtype=spec.dtype)
        except (TypeError, ValueError, OverflowError) as exc:
            raise BadRequest(f"input {name!r} must be {spec.dtype.name} of shape {spec.shape.as_list()}: {exc}") from exc
        if not spec.shape.is_compatible_with(tensor.shape):
            raise BadRequest(f"input {name!r} has shape {tensor.shape.as_list()}, expected {spec.shape.as_list()}.")
        return tensor

    def _feeds(self, request: dict, names: list[str]) -> tuple[bool, dict[str, Any]]:
        """(row format?, input name -> values) from a row or columnar request."""
        if ("instances" in request) == ("inputs" in request):
            raise BadRequest('the body needs exactly one of "instances" (row format) or "inputs" (columnar).')
        row = "instances" in request
        data = _decode(request["instances"] if row else request["inputs"])
        if row:
            if not isinstance(data, list):
                raise BadRequest('"instances" must be a list, one item per example.')
            if data and all(isinstance(item, dict) for item in data):
                unknown = sorted({key for item in data for key in item} - set(names))
                if unknown:
                    raise BadRequest(f"unknown inputs {unknown}; the model's inputs are {names}.")
                return row, {name: [item[name] for item in data if name in item] for name in names
                             if any(name in item for item in data)}
            if any(isinstance(item, dict) for item in data) or len(names) > 1:
                raise BadRequest(f"each instance must be an object with the inputs {names}.")
            return row, {names[0]: data}
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(names))
            if unknown:
                raise BadRequest(f"unknown inputs {unknown}; the model's inputs are {names}.")
            return row, data
        if len(names) > 1:
            raise BadRequest(f'"inputs" must be an object naming the inputs {names}.')
        return row, {names[0]: data}

    def _check_signature(self, signature: Any) -> str:
        """The signature's name, or a BadRequest naming the ones the model has."""
        if not isinstance(signature, str) or signature not in self._loaded.signatures:
            raise BadRequest(f"no signature {signature!r}; this model serves {sorted(self._loaded.signatures)}.")
        return signature

    def run(self, signature: str, feeds: dict[str, Any]) -> dict[str, np.ndarray]:
        """Call one signature on named input values (lists or arrays); its named outputs as arrays."""
        inputs = self._inputs(self._check_signature(signature))
        missing = [name for name in inputs if name not in feeds]
        if missing:
            raise BadRequest(f"missing inputs {missing}; the model expects {self.describe(signature)}.")
        unknown = sorted(set(feeds) - set(inputs))
        if unknown:
            raise BadRequest(f"unknown inputs {unknown}; the model's inputs are {list(inputs)}.")
        try:
            tensors = {name: self._tensor(name, spec, feeds[name]) for name, spec in inputs.items()}
            outputs = self._loaded.signatures[signature](**tensors)
        except (self._tf.errors.InvalidArgumentError, ValueError) as exc:
            if isinstance(exc, BadRequest):
                raise
            message = getattr(exc, "message", str(exc)).strip().splitlines()[0]
            raise BadRequest(
                f"the model rejected the input ({message}); it expects {self.describe(signature)}."
            ) from exc
        return {key: np.asarray(value) for key, value in outputs.items()}

    def __call__(self, request: dict) -> dict:
        """Answer a TF Serving predict request (row or columnar format, optional signature_name)."""
        signature = request.get("signature_name", self.signature)
        names = list(self._inputs(self._check_signature(signature)))
        row, feeds = self._feeds(request, names)
        if row and len({len(values) for values in feeds.values()}) > 1:
            raise BadRequest("every instance must give every input (the row format needs equal counts).")
        arrays = self.run(signature, feeds)
        if not row:
            return {"outputs": {k: _json(k, v) for k, v in arrays.items()} if len(arrays) > 1
                    else _json(*next(iter(arrays.items())))}
        if len(arrays) == 1:
            return {"predictions": _json(*next(iter(arrays.items())))}
        count = len(next(iter(arrays.values())))
        return {"predictions": [{k: _json(k, v[i]) for k, v in arrays.items()} for i in range(count)]}


class VersionedModel:
    """The versions of one model under `<base_path>/<version>/saved_model.pb`, found and loaded as TF Serving does."""

    def __init__(self, base_path: str | Path, poll_seconds: float = 1.0,
                 load: Callable[[Path], Callable[[dict], dict]] = SignaturePredictor) -> None:
        self.base_path = Path(base_path)
        if not self.base_path.is_dir():
            raise ValueError(f"{self.base_path} is not a folder; TF Serving's layout is "
                             "<model_base_path>/<version>/saved_model.pb, e.g. models/pets/1/saved_model.pb.")
        self.poll_seconds = poll_seconds
        self._load = load
        self._loaded: dict[int, Callable[[dict], dict]] = {}
        self.errors: dict[int, str] = {}  # versions on disk that failed to load, and why
        self._polled = -float("inf")
        self._lock = threading.Lock()
        if not self.versions():
            raise ValueError(f"no version under {self.base_path} could be served: export each version into a numbered "
                             f"folder, e.g. {self.base_path / '1'}, holding saved_model.pb. Load errors: {self.errors}")

    def _on_disk(self) -> list[int]:
        """Version numbers whose folder holds a complete SavedModel (TF Serving ignores other folders)."""
        return sorted(int(d.name) for d in self.base_path.iterdir()
                      if d.name.isdigit() and (d / "saved_model.pb").is_file())

    def versions(self) -> dict[int, Callable[[dict], dict]]:
        """The loaded versions, after loading any new one found (at most one look per `poll_seconds`)."""
        with self._lock:
            if time.monotonic() - self._polled >= self.poll_seconds:
                on_disk = self._on_disk()
                for version in on_disk:
                    if version not in self._loaded:
                        try:
                            self._loaded[version] = self._load(self.base_path / str(version))
                            self.errors.pop(version, None)
                        except Exception as exc:  # noqa: BLE001 - a broken new version must not stop the others
                            self.errors[version] = f"{type(exc).__name__}: {str(exc).strip()[:300]}"
                for version in set(self._loaded) - set(on_disk):  # a deleted folder is unloaded, as in TF Serving
                    del self._loaded[version]
                self._polled = time.monotonic()
            return dict(self._loaded)

    def __call__(self, request: dict) -> dict:
        """Predict with the highest version."""
        versions = self.versions()
        return versions[max(versions)](request)


def export_version(export: Callable[[Path], Any], base_path: str | Path, version: int | None = None) -> Path:
    """Export into `<base_path>/<version>/` (default: one above the highest), atomically, as TF Serving expects it."""
    import shutil

    base = Path(base_path)
    base.mkdir(parents=True, exist_ok=True)
    existing = [int(d.name) for d in base.iterdir() if d.name.isdigit()]
    version = version if version is not None else max(existing, default=0) + 1
    if not isinstance(version, int) or version < 1:
        raise ValueError(f"a TF Serving version is a positive integer, got {version!r}.")
    target = base / str(version)
    if target.exists():
        raise FileExistsError(f"{target} exists: TF Serving never reloads a version in place; export a new one.")
    partial = base / f".partial-{version}"  # not a number: a polling server ignores it until the rename
    shutil.rmtree(partial, ignore_errors=True)
    try:
        export(partial)
        partial.rename(target)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return target


def _parse_json(body: bytes) -> dict:
    """The request object, or a BadRequest that says what is wrong with the body."""
    try:
        request = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise BadRequest(f"the body is not UTF-8 text ({exc.reason} at byte {exc.start}).") from None
    except RecursionError:
        raise BadRequest("the body's JSON is nested too deeply.") from None
    except ValueError as exc:  # JSONDecodeError, and integers over Python's digit limit
        raise BadRequest(f"the body is not valid JSON: {exc}") from None
    if not isinstance(request, dict):
        raise BadRequest('the body must be a JSON object such as {"instances": [...]}.')
    return request


class _Handler(http.server.BaseHTTPRequestHandler):
    """Routes TF Serving REST paths to the server's predictors; every failure is a JSON error."""

    server: "_Server"

    def setup(self) -> None:
        """Give every connection the server's timeout, so a stalled client cannot hold a worker."""
        self.timeout = self.server.connection_timeout
        super().setup()

    def log_message(self, *args: Any) -> None:
        """Stay quiet: a notebook is no place for access logs."""

    def _send(self, status: int, body: dict, headers: dict[str, str] | None = None) -> None:
        payload = json.dumps(body).encode()
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

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own errors (bad request line, unknown method, headers too long) as JSON too."""
        self.close_connection = True
        self._send(code, {"error": message or explain or self.responses.get(code, ("error",))[0]})

    def _model(self, pattern: re.Pattern) -> tuple[dict[int, Callable[[dict], dict]], int | None]:
        """(the named model's versions, the version asked for or None), or a 404 as TF Serving answers."""
        match = pattern.match(self.path)
        if not match or match["name"] not in self.server.models:
            raise HTTPFailure(404, f"no model at {self.path}; serving {sorted(self.server.models)}")
        entry = self.server.models[match["name"]]
        versions = entry.versions() if isinstance(entry, VersionedModel) else {int(VERSION): entry}
        version = None if match["version"] is None else int(match["version"])
        if not versions or (version is not None and version not in versions):
            raise HTTPFailure(404, f"Servable not found for request: Specific({match['name']}, {match['version']}); "
                                   f"the server has versions {sorted(versions)}")
        return versions, version

    def _read_chunked(self) -> bytes:
        """A chunked request body, within MAX_BODY."""
        parts, total = [], 0
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";")[0].strip(), 16)
            except ValueError:
                raise HTTPFailure(400, f"bad chunk size line {line[:40]!r} in a chunked body") from None
            if size == 0:
                while self.rfile.readline(1024).strip():  # trailers, up to the empty line
                    pass
                return b"".join(parts)
            total += size
            if total > MAX_BODY:
                self.close_connection = True
                raise HTTPFailure(413, f"request body is over the {MAX_BODY} byte limit")
            parts.append(self.rfile.read(size))
            self.rfile.readline(8)  # the CRLF after each chunk

    def _body(self) -> bytes:
        """The request body: by Content-Length or chunked, within MAX_BODY (a larger one is drained, then 413)."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        raw = self.headers.get("Content-Length")
        if raw is None:
            self.close_connection = True
            raise HTTPFailure(411, "a request body needs a Content-Length header (or chunked transfer encoding)")
        if not raw.strip().isdigit():
            self.close_connection = True
            raise HTTPFailure(400, f"Content-Length must be a number of bytes, got {raw!r}")
        length = int(raw)
        if length > MAX_BODY:
            self.close_connection = True
            while 0 < length <= DRAIN_LIMIT:  # read and drop it, so the client is listening for the 413
                chunk = self.rfile.read(min(length, 1 << 20))
                length = length - len(chunk) if chunk else 0
            raise HTTPFailure(413, f"request body of {raw} bytes is over the {MAX_BODY} byte limit")
        body = self.rfile.read(length)
        if len(body) < length:
            self.close_connection = True
            raise HTTPFailure(400, f"the body ended after {len(body)} of the {length} bytes announced")
        return body

    def do_GET(self) -> None:
        """Model status, as TF Serving reports it."""
        try:
            versions, version = self._model(STATUS)
        except HTTPFailure as exc:
            self._send(exc.status, {"error": str(exc)})
            return
        ok = {"error_code": "OK", "error_message": ""}
        shown = [version] if version is not None else sorted(versions, reverse=True)
        self._send(200, {"model_version_status": [{"version": str(v), "state": "AVAILABLE", "status": ok}
                                                  for v in shown]})

    def do_POST(self) -> None:
        """Predict; malformed requests get a 4xx that says why, and the server keeps serving."""
        try:
            versions, version = self._model(PREDICT)
            model = versions[max(versions) if version is None else version]
            body = self._body()
            with self.server.busy:
                answer = model(_parse_json(body))
            self._send(200, answer)
        except HTTPFailure as exc:
            self._send(exc.status, {"error": str(exc)})
        except BadRequest as exc:
            self._send(400, {"error": str(exc)})
        except (TimeoutError, ConnectionError):
            self.close_connection = True
        except Exception as exc:  # noqa: BLE001 - a server must answer, not die
            self._send(500, {"error": f"{type(exc).__name__}: {exc}"})

    def _not_allowed(self) -> None:
        """PUT, DELETE, PATCH, HEAD, OPTIONS: 405 with the methods that work."""
        self.close_connection = True
        self._send(405, {"error": f"method {self.command} is not allowed; use GET for status, POST to predict"},
                   {"Allow": "GET, POST"})

    do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _not_allowed


class _Server(http.server.HTTPServer):
    """An HTTP server with a deep listen backlog, a bounded worker pool, and a shutdown that closes live connections."""

    request_queue_size = 256

    def __init__(self, address: tuple[str, int], models: dict[str, Callable[[dict], dict] | VersionedModel],
                 workers: int, connection_timeout: float) -> None:
        super().__init__(address, _Handler)
        self.models = dict(models)
        self.connection_timeout = connection_timeout
        self._pool = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="kitlib-serving")
        self._live: set[socket.socket] = set()
        self.busy = threading.BoundedSemaphore(MAX_PARALLEL)
        self._lock = threading.Lock()

    def process_request(self, request: socket.socket, client_address: Any) -> None:
        """Queue the connection for the worker pool."""
        with self._lock:
            self._live.add(request)
        self._pool.submit(self._work, request, client_address)

    def _work(self, request: socket.socket, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:  # noqa: BLE001 - one broken connection must not end the worker
            pass
        finally:
            with self._lock:
                self._live.discard(request)
            self.shutdown_request(request)

    def server_close(self) -> None:
        """Stop listening, cut every open or queued connection, and wait for the workers."""
        super().server_close()
        with self._lock:
            live = list(self._live)
        for sock in live:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._pool.shutdown(wait=True, cancel_futures=True)
        for sock in live:
            sock.close()


class ModelServer:
    """Serve predictors on 127.0.0.1 in a background thread; use as a context manager so it always stops."""

    def __init__(self, models: dict[str, Callable[[dict], dict] | VersionedModel], port: int = 0, workers: int = 16,
                 connection_timeout: float = 30.0) -> None:
        self._server = _Server(("127.0.0.1", port), models, workers, connection_timeout)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """The base URL, e.g. http://127.0.0.1:8501."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> "ModelServer":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def predict(url: str, model: str, instances: list, timeout: float = 30, version: int | None = None) -> list:
    """Send a row-format predict request (to one version if given); return the predictions or raise with the error."""
    body = json.dumps({"instances": instances}).encode()
    path = f"/v1/models/{model}" + (f"/versions/{version}" if version is not None else "") + ":predict"
    request = urllib.request.Request(url + path, body, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())["predictions"]
    except urllib.error.HTTPError as exc:
        raise BadRequest(f"HTTP {exc.code}: {json.loads(exc.read()).get('error')}") from None


def b64(data: bytes) -> dict[str, str]:
    """Wrap bytes as TF Serving's JSON binary value."""
    return {"b64": base64.b64encode(data).decode("ascii")}
