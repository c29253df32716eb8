"""TF Serving's gRPC PredictionService on loopback, for the same models as `serving.ModelServer`.

A client written for TF Serving (`tensorflow-serving-api`: a `PredictRequest` sent through
`PredictionServiceStub(channel).Predict`) talks to it unchanged: `model_spec.name`, an optional
`model_spec.version` (else the highest), `model_spec.signature_name`, inputs and outputs as
`TensorProto`s. A bad request is INVALID_ARGUMENT, an unknown model or version NOT_FOUND, as in TF Serving.
"""

from __future__ import annotations

import concurrent.futures
from typing import Any

import grpc
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from kitlib.serving.rest import BadRequest, SignaturePredictor, VersionedModel


class GrpcServer:
    """Serve SignaturePredictors or VersionedModels over gRPC on 127.0.0.1; a context manager that always stops."""

    def __init__(self, models: dict[str, SignaturePredictor | VersionedModel], port: int = 0, workers: int = 4) -> None:
        self.models = dict(models)
        self._server = grpc.server(concurrent.futures.ThreadPoolExecutor(workers))
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(_PredictionService(self.models),
                                                                           self._server)
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

    def __init__(self, models: dict[str, SignaturePredictor | VersionedModel]) -> None:
        self.models = models

    def Predict(self, request: Any, context: Any) -> Any:  # noqa: N802 - the gRPC method's name
        spec = request.model_spec
        entry = self.models.get(spec.name)
        if entry is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no model {spec.name!r}; serving {sorted(self.models)}")
        versions = entry.versions() if isinstance(entry, VersionedModel) else {1: entry}
        version = spec.version.value if spec.HasField("version") else max(versions)
        if version not in versions:
            context.abort(grpc.StatusCode.NOT_FOUND, f"Servable not found for request: Specific({spec.name}, "
                                                     f"{version}); the server has versions {sorted(versions)}")
        predictor = versions[version]
        try:
            feeds = {name: tf.make_ndarray(proto) for name, proto in request.inputs.items()}
            outputs = predictor.run(spec.signature_name or predictor.signature, feeds)
        except (BadRequest, TypeError, ValueError) as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        wanted = list(request.output_filter) or list(outputs)
        unknown = sorted(set(wanted) - set(outputs))
        if unknown:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"unknown outputs {unknown}; the model has {sorted(outputs)}")
        response = predict_pb2.PredictResponse()
        response.model_spec.name = spec.name
        response.model_spec.version.value = version
        response.model_spec.signature_name = spec.signature_name or predictor.signature
        for name in wanted:
            response.outputs[name].CopyFrom(tf.make_tensor_proto(outputs[name]))
        return response
