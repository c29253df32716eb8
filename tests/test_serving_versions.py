"""TF Serving's deployment layout, `<model_base_path>/<version>/saved_model.pb`, served by the kit's server: the
highest version by default, `/versions/N` for one, the status listing them, a new version picked up without restart;
and the request/response examples of TF Serving's REST API documentation (tensorflow_serving/g3doc/api/api_rest.md)."""

from __future__ import annotations

import base64
import shutil
import time
from pathlib import Path

import pytest
import tensorflow as tf

from kitlib import serving
from conftest import http_json

# api_rest.md's example signature: three named inputs of different types and shapes.
ROW = {"instances": [{"tag": "foo", "signal": [1, 2, 3, 4, 5], "sensor": [[1, 2], [3, 4]]},
                     {"tag": "bar", "signal": [3, 4, 1, 2, 5], "sensor": [[4, 5], [6, 8]]}]}
COLUMNAR = {"inputs": {"tag": ["foo", "bar"], "signal": [[1, 2, 3, 4, 5], [3, 4, 1, 2, 5]],
                       "sensor": [[[1, 2], [3, 4]], [[4, 5], [6, 8]]]}}


def save_version(version: int, path: Path) -> None:
    """A SavedModel with api_rest.md's inputs whose outputs carry the version (signal sum x version)."""

    class Model(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec((None,), tf.string), tf.TensorSpec((None, 5), tf.int32),
                                      tf.TensorSpec((None, 2, 2), tf.float32)])
        def serve(self, tag, signal, sensor):
            return {"signal_sum": tf.reduce_sum(signal, axis=1) * version, "tag_length": tf.strings.length(tag),
                    "sensor_max": tf.reduce_max(sensor, axis=[1, 2]), "upper": tf.strings.upper(tag),
                    "tag_bytes": tag}

    model = Model()
    tf.saved_model.save(model, str(path), signatures={"serving_default": model.serve})


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """models/tagger/1 and models/tagger/2, exported through serving.export_version."""
    root = tmp_path_factory.mktemp("models") / "tagger"
    for version in (1, 2):
        assert serving.export_version(lambda path, v=version: save_version(v, path), root) == root / str(version)
    return root


def test_highest_version_by_default_and_a_specific_one_by_path(base: Path) -> None:
    with serving.ModelServer({"tagger": serving.VersionedModel(base)}) as server:
        latest = http_json(server.url + "/v1/models/tagger:predict", ROW)
        first = http_json(server.url + "/v1/models/tagger/versions/1:predict", ROW)
        second = http_json(server.url + "/v1/models/tagger/versions/2:predict", ROW)
        missing = http_json(server.url + "/v1/models/tagger/versions/3:predict", ROW)
        status = http_json(server.url + "/v1/models/tagger")
        helper = [serving.predict(server.url, "tagger", ROW["instances"], version=v)[0]["signal_sum"] for v in (1, None)]
        one = http_json(server.url + "/v1/models/tagger/versions/1")
    assert [p["signal_sum"] for p in latest[1]["predictions"]] == [30, 30]  # 15 x version 2
    assert [p["signal_sum"] for p in first[1]["predictions"]] == [15, 15]
    assert second == latest
    assert helper == [15, 30]
    assert missing[0] == 404 and "Specific(tagger, 3)" in missing[1]["error"] and "[1, 2]" in missing[1]["error"]
    assert status == (200, {"model_version_status": [
        {"version": v, "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}} for v in ("2", "1")]})
    assert [s["version"] for s in one[1]["model_version_status"]] == ["1"]


def test_a_new_version_is_served_without_restart(base: Path, tmp_path: Path) -> None:
    root = tmp_path / "tagger"
    shutil.copytree(base / "1", root / "1")
    (root / "7-notes").mkdir()  # not a number: TF Serving ignores it, so must the kit
    with serving.ModelServer({"tagger": serving.VersionedModel(root, poll_seconds=0.2)}) as server:
        assert http_json(server.url + "/v1/models/tagger:predict", ROW)[1]["predictions"][0]["signal_sum"] == 15
        serving.export_version(lambda path: save_version(3, path), root)  # version 2: one above the highest
        time.sleep(0.3)
        assert http_json(server.url + "/v1/models/tagger:predict", ROW)[1]["predictions"][0]["signal_sum"] == 45
        assert [s["version"] for s in http_json(server.url + "/v1/models/tagger")[1]["model_version_status"]] == ["2", "1"]
        shutil.rmtree(root / "2")
        time.sleep(0.3)
        assert http_json(server.url + "/v1/models/tagger/versions/2:predict", ROW)[0] == 404
        assert http_json(server.url + "/v1/models/tagger:predict", ROW)[1]["predictions"][0]["signal_sum"] == 15


def test_api_rest_examples_row_and_columnar(base: Path) -> None:
    with serving.ModelServer({"tagger": serving.VersionedModel(base)}) as server:
        row = http_json(server.url + "/v1/models/tagger/versions/1:predict", ROW)
        columnar = http_json(server.url + "/v1/models/tagger/versions/1:predict", COLUMNAR)
    # Row format: one object per instance, named outputs inside; columnar: one list per named output.
    # String outputs are UTF-8 text, those named *_bytes base64 (api_rest.md's "Encoding binary values").
    foo, bar = ({"b64": base64.b64encode(t).decode()} for t in (b"foo", b"bar"))
    assert row == (200, {"predictions": [
        {"signal_sum": 15, "tag_length": 3, "sensor_max": 4.0, "upper": "FOO", "tag_bytes": foo},
        {"signal_sum": 15, "tag_length": 3, "sensor_max": 8.0, "upper": "BAR", "tag_bytes": bar}]})
    assert columnar == (200, {"outputs": {"signal_sum": [15, 15], "tag_length": [3, 3], "sensor_max": [4.0, 8.0],
                                          "upper": ["FOO", "BAR"], "tag_bytes": [foo, bar]}})


def test_api_rest_b64_and_errors(base: Path) -> None:
    encoded = {"b64": base64.b64encode(b"hello").decode()}  # api_rest.md: binary strings as {"b64": ...}
    body = {"signature_name": "serving_default",
            "instances": [{"tag": encoded, "signal": [1, 1, 1, 1, 1], "sensor": [[0, 0], [0, 0]]}]}
    with serving.ModelServer({"tagger": serving.VersionedModel(base)}) as server:
        answer = http_json(server.url + "/v1/models/tagger:predict", body)
        errors = [http_json(server.url + "/v1/models/tagger:predict", {"instances": [{"tag": "x"}]}),
                  http_json(server.url + "/v1/models/tagger:predict", dict(COLUMNAR, instances=[])),
                  http_json(server.url + "/v1/models/tagger:predict", dict(ROW, signature_name="classify")),
                  http_json(server.url + "/v1/models/other:predict", ROW)]
    assert answer == (200, {"predictions": [{"signal_sum": 10, "tag_length": 5, "sensor_max": 0.0, "upper": "HELLO",
                                             "tag_bytes": encoded}]})
    assert [status for status, _ in errors] == [400, 400, 400, 404]
    assert all(set(error) == {"error"} and error["error"] for _, error in errors)  # api_rest.md: {"error": "..."}


def test_layout_mistakes_are_clear_errors(base: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="<model_base_path>/<version>/saved_model.pb"):
        serving.VersionedModel(tmp_path / "nowhere")
    flat = tmp_path / "flat"
    shutil.copytree(base / "1", flat)  # the SavedModel right in the base path: no version folder
    with pytest.raises(ValueError, match="numbered folder"):
        serving.VersionedModel(flat)
    with pytest.raises(FileExistsError, match="never reloads a version in place"):
        serving.export_version(lambda path: None, base, version=1)
    with pytest.raises(ValueError, match="positive integer"):
        serving.export_version(lambda path: None, tmp_path / "m", version=0)


def test_a_broken_new_version_leaves_the_others_serving(base: Path, tmp_path: Path) -> None:
    root = tmp_path / "tagger"
    shutil.copytree(base / "1", root / "1")
    model = serving.VersionedModel(root, poll_seconds=0)
    (root / "2").mkdir()
    (root / "2" / "saved_model.pb").write_bytes(b"not a SavedModel")  # a half-copied or corrupt export
    with serving.ModelServer({"tagger": model}) as server:
        assert http_json(server.url + "/v1/models/tagger:predict", ROW)[1]["predictions"][0]["signal_sum"] == 15
        assert [s["version"] for s in http_json(server.url + "/v1/models/tagger")[1]["model_version_status"]] == ["1"]
    assert list(model.errors) == [2]

    def failing_export(path: Path) -> None:
        (path / "saved_model.pb").write_bytes(b"half written")
        raise RuntimeError("export failed")

    with pytest.raises(RuntimeError, match="export failed"):
        serving.export_version(failing_export, root)
    assert sorted(p.name for p in root.iterdir()) == ["1", "2"]  # no partial folder left behind
