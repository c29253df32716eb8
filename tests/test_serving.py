"""The TF Serving–style REST server on loopback: real SavedModels with raw-input signatures, and bad requests."""

from __future__ import annotations

import io
import json
import urllib.error
import urllib.request
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from kitlib import serving
from conftest import http_json


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A text model taking raw strings and an image model taking encoded image bytes, both exported."""
    root = tmp_path_factory.mktemp("exported")
    vectorizer = keras.layers.TextVectorization(max_tokens=50, output_sequence_length=8)
    vectorizer.adapt(["a wonderful film", "a dull boring film", "great acting"])
    text = keras.Sequential([keras.Input(shape=(), dtype="string"), vectorizer, keras.layers.Embedding(50, 4),
                             keras.layers.GlobalAveragePooling1D(), keras.layers.Dense(1, activation="sigmoid")])
    archive = keras.export.ExportArchive()
    archive.track(text)
    archive.add_endpoint("serve", lambda texts: text(texts), [tf.TensorSpec((None,), tf.string)])
    archive.write_out(str(root / "text"), verbose=False)

    image = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Conv2D(2, 3), keras.layers.GlobalAveragePooling2D(),
                              keras.layers.Dense(2, activation="softmax")])

    def from_bytes(encoded: tf.Tensor) -> tf.Tensor:
        decode = lambda b: tf.image.resize(tf.io.decode_image(b, channels=3, expand_animations=False), (16, 16)) / 255
        return image(tf.map_fn(decode, encoded, fn_output_signature=tf.float32))

    archive = keras.export.ExportArchive()
    archive.track(image)
    archive.add_endpoint("serve", from_bytes, [tf.TensorSpec((None,), tf.string)])
    archive.write_out(str(root / "image"), verbose=False)
    return {"text": root / "text", "image": root / "image"}


@pytest.fixture(scope="module")
def server(exported: dict[str, Path]):
    models = {name: serving.SignaturePredictor(path) for name, path in exported.items()}
    with serving.ModelServer(models) as running:
        yield running, models


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    from PIL import Image

    Image.fromarray((np.random.default_rng(0).random((20, 20, 3)) * 255).astype("uint8")).save(buffer, "PNG")
    return buffer.getvalue()


def test_status_and_text_predictions_match_the_model(server, exported) -> None:
    running, models = server
    with urllib.request.urlopen(f"{running.url}/v1/models/text", timeout=10) as response:
        assert json.loads(response.read())["model_version_status"][0]["state"] == "AVAILABLE"
    texts = ["a wonderful film", "boring"]
    got = serving.predict(running.url, "text", texts)
    loaded = tf.saved_model.load(str(exported["text"]))  # keep a reference: its variables live with it
    direct = loaded.serve(tf.constant(texts)).numpy()
    assert np.allclose(np.array(got), direct, atol=1e-6) and np.array(got).shape == (2, 1)


def test_columnar_format(server) -> None:
    running, _ = server
    status, body = http_json(running.url + "/v1/models/text:predict", json.dumps({"inputs": ["great acting"]}).encode())
    assert status == 200 and np.array(body["outputs"]).shape == (1, 1)


def test_encoded_image_bytes_as_b64(server) -> None:
    running, _ = server
    got = serving.predict(running.url, "image", [serving.b64(png_bytes())])
    assert np.array(got).shape == (1, 2) and np.isclose(sum(got[0]), 1, atol=1e-5)


@pytest.mark.parametrize("body, message", [
    (b"{not json", "not valid JSON"),
    (b"[1, 2]", "must be a JSON object"),
    (json.dumps({"signature_name": "serve"}).encode(), 'exactly one of "instances"'),
    (json.dumps({"instances": [1.5, 2.5]}).encode(), "must be string"),
    (json.dumps({"instances": [["a"], ["b"]]}).encode(), "has shape [2, 1], expected [None]"),
])
def test_malformed_text_requests_get_400_and_the_server_keeps_serving(server, body: bytes, message: str) -> None:
    running, _ = server
    status, answer = http_json(running.url + "/v1/models/text:predict", body)
    assert status == 400 and message in answer["error"]
    assert len(serving.predict(running.url, "text", ["still here"])) == 1


def test_undecodable_image_is_a_400_that_names_the_expected_input(server) -> None:
    running, _ = server
    body = json.dumps({"instances": [serving.b64(b"definitely not an image")]}).encode()
    status, answer = http_json(running.url + "/v1/models/image:predict", body)
    assert status == 400 and "the model rejected the input" in answer["error"] and "string" in answer["error"]
    status, answer = http_json(running.url + "/v1/models/image:predict", json.dumps({"instances": [{"b64": "%%"}]}).encode())
    assert status == 400 and "invalid base64" in answer["error"]


def test_unknown_model_and_path_are_404(server) -> None:
    running, _ = server
    assert http_json(running.url + "/v1/models/gpt:predict", b"{}")[0] == 404
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"{running.url}/v2/whatever", timeout=10)
    assert err.value.code == 404


def test_server_stops_and_frees_its_port(exported) -> None:
    with serving.ModelServer({"text": serving.SignaturePredictor(exported["text"])}) as running:
        url = running.url
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"{url}/v1/models/text", timeout=2)


def test_missing_signature_is_a_clear_error(exported) -> None:
    with pytest.raises(ValueError, match="has no signature 'predict'; it has"):
        serving.SignaturePredictor(exported["text"], signature="predict")
