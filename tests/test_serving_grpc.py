"""The kit's gRPC PredictionService answers TF Serving's own client (tensorflow-serving-api) unchanged."""

from __future__ import annotations

import time
from pathlib import Path

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from kitlib import serving
from kitlib.serving.grpc import GrpcServer
from tests.test_serving_limits import pixels_model, png  # noqa: F401 - pixels_model is a fixture
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


def test_a_huge_shape_with_one_value_is_refused_before_it_is_built(stub) -> None:
    bomb = request()
    bomb.inputs["sensor"].CopyFrom(tf.make_tensor_proto(1.0, shape=[25_000_000, 2, 2]))  # 100M floats from one value
    start = time.monotonic()
    with pytest.raises(grpc.RpcError) as refused:
        stub.Predict(bomb, timeout=30)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT and time.monotonic() - start < 5
    assert "declares shape [25000000, 2, 2], 100000000 values; the server takes at most 4194304" in \
        refused.value.details()


def test_shapes_must_match_the_values_and_bytes_sent(stub) -> None:
    short_bytes = request()
    short_bytes.inputs["sensor"].tensor_shape.dim[0].size = 3  # 3x2x2 declared, the bytes of 2x2x2 sent
    few_values = request()
    few_values.inputs["tag"].tensor_shape.dim[0].size = 5  # 5 strings declared, 2 sent
    for bad, message in ((short_bytes, "(48 bytes of float32) but carries 32 bytes"),
                         (few_values, "declares shape [5] (5 values) but carries 2")):
        with pytest.raises(grpc.RpcError) as refused:
            stub.Predict(bad, timeout=30)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT and message in refused.value.details()
    splat = request()  # TensorFlow's own compact form of a filled tensor: one value for the whole shape
    splat.inputs["sensor"].CopyFrom(tf.make_tensor_proto(2.0, shape=[2, 2, 2]))
    assert np.allclose(tf.make_ndarray(stub.Predict(splat, timeout=30).outputs["sensor_max"]), [2.0, 2.0])


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_the_pixel_cap_holds_over_grpc(pixels_model: Path) -> None:
    message = predict_pb2.PredictRequest()
    message.model_spec.name = "pixels"
    message.inputs["images"].CopyFrom(tf.make_tensor_proto([png(10_000, 10_000)]))
    with GrpcServer({"pixels": serving.SignaturePredictor(pixels_model)}) as server:
        with grpc.insecure_channel(server.target) as channel:
            with pytest.raises(grpc.RpcError) as refused:
                prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(message, timeout=30)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "(10000x10000)" in refused.value.details()
