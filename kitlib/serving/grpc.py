"""TF Serving's gRPC PredictionService on loopback, for the same models as `kitlib.serving.ModelServer`.

A client written for TF Serving (`tensorflow-serving-api`: a `PredictRequest` sent through
`PredictionServiceStub(channel).Predict`) talks to it unchanged: `model_spec.name`, an optional
`model_spec.version` (else the highest), `model_spec.signature_name`, inputs and outputs as
`TensorProto`s. A bad request is INVALID_ARGUMENT, an unknown model or version NOT_FOUND, as in TF Serving.
Every input tensor is checked before it is built: its shape holds at most `max_elements` values, and the values
or bytes it carries match that shape (or are one value, which TensorFlow repeats over the shape).
"""

from __future__ import annotations

import concurrent.futures
import math
from typing import Any, Mapping

import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from kitlib.serving.codec import BadRequest
from kitlib.serving.versions import Model, NotFound, find_servable

MAX_ELEMENTS = 1 << 22  # values per input tensor: 4M, about what gRPC's default 4 MiB message can carry


def tensor_array(name: str, proto: Any, max_elements: int = MAX_ELEMENTS) -> np.ndarray:
    """An input TensorProto as an array, or a BadRequest when its shape is too large or does not fit what it carries."""
    dims = [dim.size for dim in proto.tensor_shape.dim]
    if proto.tensor_shape.unknown_rank or any(size < 0 for size in dims):
        raise BadRequest(f"input {name!r} must have a known shape, got {dims}.")
    count = math.prod(dims)
    if count > max_elements:
        raise BadRequest(f"input {name!r} declares shape {dims}, {count} values; the server takes at most "
                         f"{max_elements} per input.")
    try:
        dtype = tf.dtypes.as_dtype(proto.dtype)
        itemsize = np.dtype(dtype.as_numpy_dtype).itemsize
    except TypeError as exc:
        raise BadRequest(f"input {name!r} has a dtype the server cannot read: {exc}") from None
    if proto.tensor_content:
        if len(proto.tensor_content) != count * itemsize:
            raise BadRequest(f"input {name!r} declares shape {dims} ({count * itemsize} bytes of {dtype.name}) "
                             f"but carries {len(proto.tensor_content)} bytes.")
    else:
        sent = sum(len(values) for field, values in proto.ListFields() if field.name.endswith("_val"))
        sent //= 2 if dtype.is_complex else 1  # a complex value is sent as two numbers
        if sent != count and not (sent == 1 and count > 1):
            raise BadRequest(f"input {name!r} declares shape {dims} ({count} values) but carries {sent}.")
    return tf.make_ndarray(proto)


class GrpcServer:
    """Serve SignaturePredictors or VersionedModels over gRPC on 127.0.0.1; a context manager that always stops."""

    def __init__(self, models: Mapping[str, Model], port: int = 0, workers: int = 4,
                 max_elements: int = MAX_ELEMENTS) -> None:
        self.models = dict(models)
        self._server = grpc.server(concurrent.futures.ThreadPoolExecutor(workers))
        service = _PredictionService(self.models, max_elements)
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(service, self._server)
        self.port = self._server.add_insecure_port(f"127.0.0.1:{port}")

    @property
    def target(self) -> str:
        """The address a client's grpc.insecure_channel takes, e.g. 127.0.0.1:8500."""
        return f"127.0.0.1:{self.port}"

    def __enter__(self) -> "GrpcServer":
        self._server.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.stop(grace=1).wait(5)


class _PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    """Predict, the one PredictionService method the kit serves (the others answer UNIMPLEMENTED)."""

    def __init__(self, models: Mapping[str, Model], max_elements: int) -> None:
        self.models = models
        self.max_elements = max_elements

    def Predict(self, request: Any, context: Any) -> Any:  # noqa: N802 - the gRPC method's name
        spec = request.model_spec
        if spec.HasField("version_label"):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "version labels are not served; set model_spec.version "
                                                            "to a number, or leave it out for the highest")
        try:
            servable = find_servable(self.models, spec.name, spec.version.value if spec.HasField("version") else None)
        except NotFound as exc:
            context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
        predictor = servable.predictor
        signature = spec.signature_name or predictor.signature
        try:
            feeds = {name: tensor_array(name, proto, self.max_elements) for name, proto in request.inputs.items()}
            outputs = predictor.run(signature, feeds)
        except (BadRequest, TypeError, ValueError) as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        wanted = list(request.output_filter) or list(outputs)
        unknown = sorted(set(wanted) - set(outputs))
        if unknown:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"unknown outputs {unknown}; the model has {sorted(outputs)}")
        response = predict_pb2.PredictResponse()
        response.model_spec.name = spec.name
        response.model_spec.version.value = servable.version
        response.model_spec.signature_name = signature
        for name in wanted:
            response.outputs[name].CopyFrom(tf.make_tensor_proto(outputs[name]))
        return response
