"""TensorFlow Serving's REST predict format: the JSON body read strictly, inputs out of it, outputs back into it.

A request is `{"instances": [...]}` (row format: one item per example, objects when there are named inputs) or
`{"inputs": ...}` (columnar: one value, or an object of values per input), with an optional `"signature_name"`;
binary values are `{"b64": "..."}` anywhere in the inputs. The answer is `{"predictions": ...}` for the row
format and `{"outputs": ...}` for the columnar one. The body is read as strict JSON: UTF-8, an object, nested at
most `max_depth` deep, with finite numbers only (`NaN` and `Infinity` are not JSON, and 1e400 is no float32).
"""

from __future__ import annotations

import base64
import json
import math
import re
from typing import Any

import numpy as np

MAX_DEPTH = 64  # a batch of colour images as pixel lists is 5 levels deep; Python's own parser gives up near 1,000
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')  # a JSON string, escapes included


class BadRequest(ValueError):
    """The request does not fit the format or the model's signature; the message says what was expected."""


def b64(data: bytes) -> dict[str, str]:
    """Wrap bytes as TF Serving's JSON binary value."""
    return {"b64": base64.b64encode(data).decode("ascii")}


def json_depth(body: bytes) -> int:
    """How deep the arrays and objects of a JSON text nest (brackets inside strings do not count)."""
    codes = np.frombuffer(_STRING.sub(b"", body), np.uint8)
    brackets = codes[np.isin(codes, np.frombuffer(b"[]{}", np.uint8))]
    steps = np.where((brackets == ord("[")) | (brackets == ord("{")), 1, -1)
    return int(np.cumsum(steps).max(initial=0))


def _no_constant(name: str) -> float:
    """json's hook for NaN and Infinity, which are not JSON."""
    raise BadRequest(f"the body holds {name}, which is not JSON: send a number, or leave the value out.")


def _finite(text: str) -> float:
    """json's hook for a number with a fraction or exponent: a float, refused when it overflows to infinity."""
    value = float(text)
    if not math.isfinite(value):
        raise BadRequest(f"the number {text[:40]} in the body is too large for a float.")
    return value


def parse_request(body: bytes, max_depth: int = MAX_DEPTH) -> dict:
    """The request object of a predict body, or a BadRequest that says what is wrong with it."""
    depth = json_depth(body)
    if depth > max_depth:
        raise BadRequest(f"the body's JSON is nested too deeply ({depth} levels; the server reads at most {max_depth}).")
    try:
        request = json.loads(body.decode("utf-8"), parse_constant=_no_constant, parse_float=_finite)
    except UnicodeDecodeError as exc:
        raise BadRequest(f"the body is not UTF-8 text ({exc.reason} at byte {exc.start}).") from None
    except BadRequest:
        raise
    except ValueError as exc:  # JSONDecodeError, and integers over Python's digit limit
        raise BadRequest(f"the body is not valid JSON: {exc}") from None
    if not isinstance(request, dict):
        raise BadRequest('the body must be a JSON object such as {"instances": [...]}.')
    return request


def decode_binary(value: Any) -> Any:
    """Turn TF Serving's {"b64": ...} objects into bytes, recursively (lists and named inputs alike)."""
    if isinstance(value, dict):
        if set(value) == {"b64"}:
            if not isinstance(value["b64"], str):
                raise BadRequest("a {'b64': ...} value must hold a base64 string.")
            try:
                return base64.b64decode(value["b64"], validate=True)
            except ValueError as exc:
                raise BadRequest(f"invalid base64 in a {{'b64': ...}} value: {exc}") from exc
        return {key: decode_binary(v) for key, v in value.items()}
    if isinstance(value, list):
        return [decode_binary(v) for v in value]
    return value


def feeds(request: dict, names: list[str]) -> tuple[bool, dict[str, Any]]:
    """(row format?, input name -> values) from a row or columnar request for a signature with these inputs."""
    if ("instances" in request) == ("inputs" in request):
        raise BadRequest('the body needs exactly one of "instances" (row format) or "inputs" (columnar).')
    row = "instances" in request
    data = decode_binary(request["instances"] if row else request["inputs"])
    if not row:
        if isinstance(data, dict):
            _no_unknown(data, names)
            return row, data
        if len(names) > 1:
            raise BadRequest(f'"inputs" must be an object naming the inputs {names}.')
        return row, {names[0]: data}
    if not isinstance(data, list):
        raise BadRequest('"instances" must be a list, one item per example.')
    if not (data and all(isinstance(item, dict) for item in data)):
        if any(isinstance(item, dict) for item in data) or len(names) > 1:
            raise BadRequest(f"each instance must be an object with the inputs {names}.")
        return row, {names[0]: data}
    for item in data:
        _no_unknown(item, names)
    columns = {name: [item[name] for item in data if name in item] for name in names if any(name in i for i in data)}
    if len({len(values) for values in columns.values()}) > 1:
        raise BadRequest("every instance must give every input (the row format needs equal counts).")
    return row, columns


def _no_unknown(given: dict, names: list[str]) -> None:
    """A BadRequest when a request names inputs the signature does not have."""
    unknown = sorted(set(given) - set(names))
    if unknown:
        raise BadRequest(f"unknown inputs {unknown}; the model's inputs are {names}.")


def to_json(name: str, array: Any) -> Any:
    """An output as TF Serving writes it: strings as UTF-8 text, `{"b64": ...}` for outputs named `*_bytes`."""

    def convert(item: Any) -> Any:
        if isinstance(item, list):
            return [convert(v) for v in item]
        if isinstance(item, bytes):
            return b64(item) if name.endswith("_bytes") else item.decode("utf-8", errors="replace")
        return item

    return convert(np.asarray(array).tolist())


def answer(row: bool, outputs: dict[str, np.ndarray]) -> dict:
    """The answer body: `predictions` (one item per example) for the row format, `outputs` for the columnar one."""
    if not row:
        return {"outputs": {k: to_json(k, v) for k, v in outputs.items()} if len(outputs) > 1
                else to_json(*next(iter(outputs.items())))}
    if len(outputs) == 1:
        return {"predictions": to_json(*next(iter(outputs.items())))}
    count = len(next(iter(outputs.values())))
    return {"predictions": [{k: to_json(k, v[i]) for k, v in outputs.items()} for i in range(count)]}
