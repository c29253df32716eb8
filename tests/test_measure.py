"""kitlib.measure: latency, size on disk, parameter counts and table rows for lesson 06."""

from __future__ import annotations

import time

import keras
import numpy as np
import pytest

from kitlib import measure


def small_model(width: int) -> keras.Model:
    return keras.Sequential([keras.Input((8,)), keras.layers.Dense(width, activation="relu"), keras.layers.Dense(1)])


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


def test_batch_of_repeats_examples_to_the_requested_size() -> None:
    batch = measure.batch_of(np.arange(3), 7)
    assert batch.tolist() == [0, 1, 2, 0, 1, 2, 0]
    strings = measure.batch_of(np.array(["a", "b"]), 3)
    assert strings.dtype.name == "string" and strings.numpy().tolist() == [b"a", b"b", b"a"], "strings as tf.string"
    with pytest.raises(ValueError):
        measure.batch_of(np.array([]), 2)


class Slow:
    """A fake model whose first call is slow (tracing) and later calls take a known time."""

    def __init__(self) -> None:
        self.calls = 0

    def predict_on_batch(self, batch: np.ndarray) -> np.ndarray:
        self.calls += 1
        time.sleep(0.2 if self.calls == 1 else 0.01)
        return batch


def test_latency_is_the_median_after_warm_up() -> None:
    model = Slow()
    ms = measure.latency_ms(model, np.zeros((1, 8)), repeats=5, warmup=1)
    assert model.calls == 6
    assert 9 <= ms < 60, "the slow first (tracing) call must not count"
    with pytest.raises(ValueError):
        measure.latency_ms(model, np.zeros((1, 8)), repeats=0)


def test_measure_makes_a_row_and_the_table_prints_it() -> None:
    model = small_model(16)
    row = measure.measure("tiny", model, np.zeros((3, 8), "float32"), 0.75, kind="test", repeats=2)
    assert row["model"] == "tiny" and row["accuracy"] == 0.75 and row["params_m"] == pytest.approx(161 / 1e6)
    assert row["latency_b1_ms"] > 0 and row["latency_b32_ms"] > 0 and row["disk_mb"] > 0
    table = measure.format_table([row])
    assert "tiny" in table and "75.0%" in table and "b32 ms" in table


def test_a_string_model_is_measured_on_raw_text() -> None:
    vectorizer = keras.layers.TextVectorization(max_tokens=20, output_sequence_length=4)
    vectorizer.adapt(["good film", "bad film"])
    model = keras.Sequential([keras.Input(shape=(), dtype="string"), vectorizer, keras.layers.Embedding(20, 2),
                              keras.layers.GlobalAveragePooling1D(), keras.layers.Dense(1, activation="sigmoid")])
    row = measure.measure("boe", model, np.array(["good film", "bad"]), 0.5, batch_sizes=(1, 4), repeats=1)
    assert row["latency_b4_ms"] > 0 and row["params_m"] == pytest.approx((20 * 2 + 3) / 1e6)


def test_disk_size_leaves_out_the_optimizer_state() -> None:
    import numpy as np

    trained = small_model(20_000)
    before = measure.disk_size_mb(trained)
    trained.compile(optimizer="adam", loss="mse")
    trained.fit(np.zeros((4,) + tuple(trained.input_shape[1:])), np.zeros((4,) + tuple(trained.output_shape[1:])),
                verbose=0)
    assert measure.disk_size_mb(trained) == pytest.approx(before, rel=0.05), "Adam's slots must not count"
