"""The kit's gRPC PredictionService answers TF Serving's own client (tensorflow-serving-api) unchanged."""

from __future__ import annotations

from pathlib import Path

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from kitlib import serving
from kitlib.serving.grpc import GrpcServer
from tests.test_serving_versions import save_version


@pytest.fixture(scope="module")
def stub(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("grpc") / "tagger"
    for version in (1, 2):
        serving.export_version(lambda path, v=version: save_version(v, path), root)
    with GrpcServer({"tagger": serving.VersionedModel(root)}) as server:
        with grpc.insecure_channel(server.target) as channel:
            yield prediction_service_pb2_grpc.PredictionServiceStub(channel)


def request(version: int | None = None, **inputs: np.ndarray) -> predict_pb2.PredictRequest:
    """A PredictRequest as a TF Serving client builds it."""
    message = predict_pb2.PredictRequest()
    message.model_spec.name = "tagger"
    message.model_spec.signature_name = "serving_default"
    if version is not None:
        message.model_spec.version.value = version
    defaults = {"tag": np.array([b"foo", b"bar"]), "signal": np.array([[1, 2, 3, 4, 5]] * 2, "int32"),
                "sensor": np.array([[[1, 2], [3, 4]], [[4, 5], [6, 8]]], "float32")}
    for name, value in {**defaults, **inputs}.items():
        message.inputs[name].CopyFrom(tf.make_tensor_proto(value))
    return message


def test_predict_latest_and_pinned_versions(stub) -> None:
    latest = stub.Predict(request(), timeout=30)
    pinned = stub.Predict(request(version=1), timeout=30)
    assert latest.model_spec.version.value == 2 and pinned.model_spec.version.value == 1
    assert tf.make_ndarray(latest.outputs["signal_sum"]).tolist() == [30, 30]
    assert tf.make_ndarray(pinned.outputs["signal_sum"]).tolist() == [15, 15]
    assert tf.make_ndarray(pinned.outputs["upper"]).tolist() == [b"FOO", b"BAR"]
    assert np.allclose(tf.make_ndarray(pinned.outputs["sensor_max"]), [4.0, 8.0])


def test_errors_are_grpc_status_codes(stub) -> None:
    with pytest.raises(grpc.RpcError) as missing_version:
        stub.Predict(request(version=9), timeout=30)
    assert missing_version.value.code() == grpc.StatusCode.NOT_FOUND
    bad = request(signal=np.array([[1, 2]], "int32"))
    with pytest.raises(grpc.RpcError) as wrong_shape:
        stub.Predict(bad, timeout=30)
    assert wrong_shape.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "signal" in wrong_shape.value.details()
    del bad.inputs["tag"]
    with pytest.raises(grpc.RpcError) as missing_input:
        stub.Predict(bad, timeout=30)
    assert missing_input.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "missing inputs" in missing_input.value.details()
    assert tf.make_ndarray(stub.Predict(request(), timeout=30).outputs["tag_length"]).tolist() == [3, 3]  # still serving
