"""A small model server speaking TensorFlow Serving's REST predict API, for SavedModels on loopback.

TensorFlow Serving itself is not installable from PyPI or Debian (only its client API is), so the
kit serves the same request and response format: `POST /v1/models/<name>:predict` with
`{"instances": [...]}` (row format) or `{"inputs": ...}` (columnar), binary values as
`{"b64": "..."}`, and `GET /v1/models/<name>` for the model status.
"""

from __future__ import annotations

import base64
import http.server
import json
import re
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable

import numpy as np

MAX_BODY = 16 * 1024 * 1024
PREDICT = re.compile(r"^/v1/models/(?P<name>[\w.-]+)(/versions/\d+)?:predict$")
STATUS = re.compile(r"^/v1/models/(?P<name>[\w.-]+)(/versions/\d+)?$")


class BadRequest(ValueError):
    """The request does not fit the model's signature; the message says what was expected."""


def _decode(value: Any) -> Any:
    """Turn TF Serving's {"b64": ...} objects into bytes, recursively."""
    if isinstance(value, dict) and set(value) == {"b64"}:
        try:
            return base64.b64decode(value["b64"], validate=True)
        except (ValueError, TypeError) as exc:
            raise BadRequest(f"invalid base64 in a {{'b64': ...}} value: {exc}") from exc
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


class SignaturePredictor:
    """Calls one serving signature of a SavedModel on JSON-decoded inputs."""

    def __init__(self, path: str | Path, signature: str = "serving_default") -> None:
        import tensorflow as tf

        self._tf = tf
        self.path = str(path)
        self._loaded = tf.saved_model.load(self.path)
        if signature not in self._loaded.signatures:
            raise ValueError(f"{path} has no signature {signature!r}; it has {sorted(self._loaded.signatures)}.")
        self._fn = self._loaded.signatures[signature]
        self.inputs = self._fn.structured_input_signature[1]

    def describe(self) -> str:
        """The expected inputs, for error messages."""
        return ", ".join(f"{name}: {spec.dtype.name} {spec.shape.as_list()}" for name, spec in self.inputs.items())

    def _tensor(self, name: str, values: Any) -> Any:
        """One input tensor of the signature's dtype, or a BadRequest that says what was expected."""
        spec = self.inputs[name]
        try:
            tensor = self._tf.constant(values, dtype=spec.dtype)
        except (TypeError, ValueError) as exc:
            raise BadRequest(f"input {name!r} must be {spec.dtype.name} of shape {spec.shape.as_list()}: {exc}") from exc
        if not spec.shape.is_compatible_with(tensor.shape):
            raise BadRequest(f"input {name!r} has shape {tensor.shape.as_list()}, expected {spec.shape.as_list()}.")
        return tensor

    def __call__(self, request: dict) -> dict:
        """Answer a TF Serving predict request (row or columnar format)."""
        if ("instances" in request) == ("inputs" in request):
            raise BadRequest('the body needs exactly one of "instances" (row format) or "inputs" (columnar).')
        row = "instances" in request
        data = _decode(request["instances"] if row else request["inputs"])
        names = list(self.inputs)
        if len(names) == 1 and not (isinstance(data, dict) or (row and data and isinstance(data[0], dict))):
            feeds = {names[0]: data}
        elif row:
            if not all(isinstance(item, dict) for item in data):
                raise BadRequest(f"each instance must be an object with the inputs {names}.")
            feeds = {name: [item.get(name) for item in data] for name in names}
        else:
            feeds = data
        missing = [name for name in names if name not in feeds]
        if missing:
            raise BadRequest(f"missing inputs {missing}; the model expects {self.describe()}.")
        try:
            outputs = self._fn(**{name: self._tensor(name, feeds[name]) for name in names})
        except (self._tf.errors.InvalidArgumentError, ValueError) as exc:
            if isinstance(exc, BadRequest):
                raise
            message = getattr(exc, "message", str(exc)).strip().splitlines()[0]
            raise BadRequest(f"the model rejected the input ({message}); it expects {self.describe()}.") from exc
        arrays = {key: np.asarray(value) for key, value in outputs.items()}
        if not row:
            return {"outputs": {k: v.tolist() for k, v in arrays.items()} if len(arrays) > 1 else next(iter(arrays.values())).tolist()}
        if len(arrays) == 1:
            return {"predictions": next(iter(arrays.values())).tolist()}
        count = len(next(iter(arrays.values())))
        return {"predictions": [{k: v[i].tolist() for k, v in arrays.items()} for i in range(count)]}


class _Handler(http.server.BaseHTTPRequestHandler):
    """Routes TF Serving REST paths to the server's predictors; every failure is a JSON error."""

    server: "_Server"

    def log_message(self, *args: Any) -> None:
        """Stay quiet: a notebook is no place for access logs."""

    def _send(self, status: int, body: dict) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:
        """Model status, as TF Serving reports it."""
        match = STATUS.match(self.path)
        if not match or match["name"] not in self.server.models:
            self._send(404, {"error": f"no model at {self.path}; serving {sorted(self.server.models)}"})
            return
        ok = {"error_code": "OK", "error_message": ""}
        self._send(200, {"model_version_status": [{"version": "1", "state": "AVAILABLE", "status": ok}]})

    def do_POST(self) -> None:
        """Predict; malformed requests get a 400 that says why, and the server keeps serving."""
        match = PREDICT.match(self.path)
        if not match or match["name"] not in self.server.models:
            self._send(404, {"error": f"no model at {self.path}; serving {sorted(self.server.models)}"})
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self._send(413, {"error": f"request body of {length} bytes is over the {MAX_BODY} byte limit"})
            return
        try:
            request = json.loads(self.rfile.read(length) or b"null")
            if not isinstance(request, dict):
                raise BadRequest('the body must be a JSON object such as {"instances": [...]}.')
            self._send(200, self.server.models[match["name"]](request))
        except json.JSONDecodeError as exc:
            self._send(400, {"error": f"the body is not valid JSON: {exc}"})
        except BadRequest as exc:
            self._send(400, {"error": str(exc)})
        except Exception as exc:  # noqa: BLE001 - a server must answer, not die
            self._send(500, {"error": f"{type(exc).__name__}: {exc}"})


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    models: dict[str, Callable[[dict], dict]]


class ModelServer:
    """Serve predictors on 127.0.0.1 in a background thread; use as a context manager so it always stops."""

    def __init__(self, models: dict[str, Callable[[dict], dict]], port: int = 0) -> None:
        self._server = _Server(("127.0.0.1", port), _Handler)
        self._server.models = dict(models)
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


def predict(url: str, model: str, instances: list, timeout: float = 30) -> list:
    """Send a row-format predict request; return the predictions or raise with the server's error."""
    body = json.dumps({"instances": instances}).encode()
    request = urllib.request.Request(f"{url}/v1/models/{model}:predict", body, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())["predictions"]
    except urllib.error.HTTPError as exc:
        raise BadRequest(f"HTTP {exc.code}: {json.loads(exc.read()).get('error')}") from None


def b64(data: bytes) -> dict[str, str]:
    """Wrap bytes as TF Serving's JSON binary value."""
    return {"b64": base64.b64encode(data).decode("ascii")}
