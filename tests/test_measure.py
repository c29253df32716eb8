"""kitlib.measure: the one way lessons 06 and 07 measure size, parameters and latency, and lesson 06's table rows."""

from __future__ import annotations

import io
import time
from pathlib import Path

import keras
import numpy as np
import pytest

from kitlib import compress, measure


def small_model(width: int) -> keras.Model:
    return keras.Sequential([keras.Input((8,)), keras.layers.Dense(width, activation="relu"), keras.layers.Dense(1)])


def trained(model: keras.Model) -> keras.Model:
    """The model compiled with Adam and fitted for one step, so it carries optimizer state."""
    model.compile(optimizer="adam", loss="mse")
    model.fit(np.ones((4, 8), "float32"), np.ones((4, 1), "float32"), verbose=0)
    return model


def test_parameters_count_every_weight() -> None:
    model = small_model(16)
    assert measure.parameters(model) == 8 * 16 + 16 + 16 * 1 + 1
    model.layers[0].trainable = False
    assert measure.parameters(model) == 8 * 16 + 16 + 16 * 1 + 1, "frozen weights still count"


def test_disk_size_grows_with_the_weights() -> None:
    small, big = measure.disk_size_mb(small_model(4)), measure.disk_size_mb(small_model(20_000))
    assert 0 < small < 0.1
    # 20,000 x 8 + 20,000 + 20,000 + 1 float32 weights = 0.8 MB of weights
    assert 0.75 < big - small < 1.0


def test_the_payload_leaves_out_the_optimizer_state_a_saved_model_file_holds(tmp_path: Path) -> None:
    model = trained(small_model(20_000))
    model.save(tmp_path / "trained.keras")  # Keras 3 writes Adam's two slots per weight into it
    payload = measure.payload(model)
    weights = 4 * model.count_params()
    assert weights <= len(payload) < weights + 2_000, "the weights at float32 and a small archive header"
    assert measure.size_bytes(tmp_path / "trained.keras") > 2.5 * len(payload), "the .keras file holds Adam's slots"
    assert measure.disk_size_mb(model) == len(payload) / 1e6
    restored = small_model(20_000)
    restored.set_weights(list(np.load(io.BytesIO(payload)).values()))
    assert all(np.array_equal(a, b) for a, b in zip(restored.get_weights(), model.get_weights())), "it loads back"


def test_a_quantised_model_ships_fewer_bytes() -> None:
    model = trained(small_model(512))
    size = len(measure.payload(model))
    compress.quantize_int8(model, only=lambda layer: isinstance(layer, keras.layers.Dense))
    assert len(measure.payload(model)) < 0.7 * size


def test_sizes_of_bytes_files_and_folders(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"x" * 100)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b").write_bytes(b"y" * 50)
    assert measure.size_bytes(b"abc") == 3
    assert measure.size_bytes(tmp_path / "a") == 100 and measure.size_bytes(tmp_path) == 150
    zeros, noise = bytes(100_000), np.random.default_rng(0).bytes(100_000)
    assert measure.gzip_bytes(zeros) < 1_000 < 99_000 < measure.gzip_bytes(noise)
    assert measure.gzip_bytes(tmp_path / "a") < 100


def test_batch_of_repeats_examples_to_the_requested_size() -> None:
    batch = measure.batch_of(np.arange(3), 7)
    assert batch.tolist() == [0, 1, 2, 0, 1, 2, 0]
    strings = measure.batch_of(np.array(["a", "b"]), 3)
    assert strings.dtype.name == "string" and strings.numpy().tolist() == [b"a", b"b", b"a"], "strings as tf.string"
    with pytest.raises(ValueError):
        measure.batch_of(np.array([]), 2)


def test_latency_is_the_median_after_warm_up() -> None:
    calls = []

    def slow_first() -> None:  # the first call traces (slow), later ones take a known time
        calls.append(1)
        time.sleep(0.2 if len(calls) == 1 else 0.01)

    ms = measure.latency_ms(slow_first, repeats=5, warmup=1)
    assert len(calls) == 6
    assert 9 <= ms < 60, "the slow first (tracing) call must not count"
    with pytest.raises(ValueError, match="at least 1"):
        measure.latency_ms(slow_first, repeats=0)


def test_a_model_with_more_work_takes_longer() -> None:
    batch = np.ones((256, 8), "float32")
    light = measure.model_latency_ms(small_model(1), batch, repeats=5)
    heavy_model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(2048), keras.layers.Dense(2048),
                                    keras.layers.Dense(1)])
    heavy = measure.model_latency_ms(heavy_model, batch, repeats=5)  # 256 x 2048 x 2048 multiply-adds, ~1 GFLOP
    assert heavy > 5 * light, (light, heavy)


def test_measure_makes_a_row_and_the_table_prints_it() -> None:
    model = small_model(16)
    row = measure.measure("tiny", model, np.zeros((3, 8), "float32"), 0.75, kind="test", repeats=2)
    assert row["model"] == "tiny" and row["accuracy"] == 0.75 and row["params_m"] == pytest.approx(161 / 1e6)
    assert sorted(k for k in row if k.startswith("latency")) == ["latency_b1_ms", "latency_b32_ms"]
    table = measure.format_table([row])
    assert "tiny" in table and "75.0%" in table and "b32 ms" in table


def test_lessons_06_and_07_measure_the_same_model_alike() -> None:
    """Lesson 06 makes a `measure` row; lesson 07 takes `payload`, `count_params` and `model_latency_ms`."""
    model, examples = trained(small_model(64)), np.ones((1, 8), "float32")
    row = measure.measure("student", model, examples, 0.5, batch_sizes=(1,), repeats=2)
    payload = measure.payload(model)  # lesson 07's add_variant: bytes and gzipped bytes of the payload
    assert row["disk_mb"] == len(payload) / 1e6 and row["params_m"] == model.count_params() / 1e6
    assert measure.gzip_bytes(payload) < len(payload)


def test_a_string_model_is_measured_on_raw_text() -> None:
    vectorizer = keras.layers.TextVectorization(max_tokens=20, output_sequence_length=4)
    vectorizer.adapt(["good film", "bad film"])
    model = keras.Sequential([keras.Input(shape=(), dtype="string"), vectorizer, keras.layers.Embedding(20, 2),
                              keras.layers.GlobalAveragePooling1D(), keras.layers.Dense(1, activation="sigmoid")])
    row = measure.measure("boe", model, np.array(["good film", "bad"]), 0.5, batch_sizes=(1, 4), repeats=1)
    assert row["latency_b4_ms"] > 0 and row["params_m"] == pytest.approx((20 * 2 + 3) / 1e6)


def test_the_classical_baseline_is_measured_like_a_keras_model() -> None:
    from kitlib.models.classical import classical_baseline

    texts, labels = ["a great film", "an awful film", "great acting", "awful plot"] * 5, np.array([1, 0, 1, 0] * 5)
    model = classical_baseline((texts, labels), (texts, labels), ngram_ranges=((1, 1),), cs=(1.0,))
    row = measure.measure("tf-idf", model, np.array(["a great plot"]), 0.9, batch_sizes=(1, 4), repeats=2)
    n_grams = len(model.pipeline.named_steps["tfidf"].vocabulary_)
    assert row["params_m"] == pytest.approx((2 * n_grams + 1) / 1e6)  # idf and a coefficient per n-gram, one intercept
    assert row["disk_mb"] == len(measure.payload(model)) / 1e6 and row["latency_b4_ms"] > 0
    shipped = np.load(io.BytesIO(measure.payload(model)))
    assert "great" in shipped["arr_0"].tolist()  # the vocabulary ships as text, no pickled objects
