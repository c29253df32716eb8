"""A client for TF Serving's REST predict API (the kit's server or TF Serving itself), with its own errors.

`predict` returns the predictions or raises a `PredictError` that says what came back: `RequestRefused` for a 4xx
(the request must change), `ServerFailure` for a 5xx or an answer that is not TF Serving's JSON (its status and the
start of its body), `ServerUnreachable` when no answer came at all.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any


class PredictError(Exception):
    """A predict call that gave no predictions: `status` is the HTTP status (None without an answer)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class RequestRefused(PredictError):
    """The server refused the request (HTTP 4xx); its reason says what to change."""


class ServerFailure(PredictError):
    """The server failed (HTTP 5xx) or answered with something that is not TF Serving's JSON."""


class ServerUnreachable(PredictError):
    """No answer came: nothing listens at that URL, or the answer took longer than the timeout."""


def _answer(status: int, raw: bytes, where: str) -> dict:
    """The JSON object of an answer, or a ServerFailure with its status and the start of its body."""
    try:
        answer = json.loads(raw)
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        raise ServerFailure(f"HTTP {status} from {where}, and the body is not a JSON object: {raw[:200]!r}", status)
    return answer


def predict(url: str, model: str, instances: list, timeout: float = 30, version: int | None = None) -> list:
    """Send a row-format predict request (to one version if given); return the predictions or raise a PredictError."""
    try:
        body = json.dumps({"instances": instances}, allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"the instances cannot be sent as JSON ({exc}): wrap bytes as b64(data), and replace NaN "
                        "or infinite values.") from None
    where = url + f"/v1/models/{model}" + (f"/versions/{version}" if version is not None else "") + ":predict"
    request = urllib.request.Request(where, body, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ServerUnreachable(f"no answer from {where} ({reason}): is the server running, at that port?") from exc
    answer = _answer(status, raw, where)
    if status == 200 and "predictions" in answer:
        return answer["predictions"]
    error: Any = answer.get("error", f"no predictions in the answer: {raw[:200]!r}")
    kind = RequestRefused if 400 <= status < 500 else ServerFailure
    raise kind(f"HTTP {status}: {error}", status)
