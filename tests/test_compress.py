"""kitlib.compress (sparsity schedule, Keras 3 magnitude pruning)."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from kitlib import compress  # noqa: E402


def mask(weights: np.ndarray, sparsity: float) -> np.ndarray:
    n = int(round(sparsity * weights.size))
    out = np.ones(weights.size, dtype=np.float32)
    out[np.argsort(np.abs(weights), axis=None, kind="stable")[:n]] = 0
    return out.reshape(weights.shape)


def tiny_model(width: int = 32) -> keras.Model:
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((8,)), keras.layers.Dense(width, activation="relu"), keras.layers.Dense(1)])


def test_polynomial_sparsity_rises_fast_then_slowly_to_the_final_value() -> None:
    schedule = [compress.polynomial_sparsity(s, 0.8, begin_step=10, end_step=110) for s in range(0, 130)]
    assert schedule[0] == schedule[10] == 0.0 and schedule[110] == pytest.approx(0.8) and schedule[129] == pytest.approx(0.8)
    assert compress.polynomial_sparsity(60, 0.8, 10, 110) == pytest.approx(0.8 * (1 - 0.5 ** 3))
    assert all(b >= a for a, b in zip(schedule, schedule[1:]))
    with pytest.raises(ValueError, match="must come after"):
        compress.polynomial_sparsity(0, 0.5, 10, 10)


def test_prunable_kernels_reach_into_nested_models() -> None:
    inputs = keras.Input((8,))
    head = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)], name="head")
    model = keras.Model(inputs, head(keras.layers.Dense(4)(keras.layers.BatchNormalization()(inputs))))
    kernels = [k.path for k in compress.prunable_kernels(model)]
    assert kernels == [model.layers[2].kernel.path, head.layers[0].kernel.path]
    assert head in list(compress.layers_of(model)), "the nested model and its layers, as lesson 07's teacher has"


def test_magnitude_pruning_reaches_the_target_and_keeps_pruned_weights_at_zero() -> None:
    model = tiny_model()
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
    x = np.random.default_rng(0).normal(size=(64, 8)).astype("float32")
    y = x.sum(axis=1, keepdims=True)
    pruning = compress.MagnitudePruning(mask, 0.75, begin_step=0, end_step=20, frequency=5)
    model.fit(x, y, epochs=6, batch_size=8, callbacks=[pruning], verbose=0)  # 48 steps: 28 with the final mask
    assert compress.sparsity(model) == pytest.approx(0.75, abs=0.01)
    assert pruning.history[-1] == (20, pytest.approx(0.75)) and [s for s, _ in pruning.history][:3] == [5, 10, 15]
    for kernel in compress.prunable_kernels(model):
        weights = np.asarray(kernel)
        assert np.all(weights[pruning.masks[kernel.path] == 0] == 0)
    assert np.count_nonzero(np.asarray(model.layers[0].bias)) > 0, "biases are not pruned"
    assert len(compress.prunable_kernels(model)) == 2


def test_quantize_int8_falls_back_to_layer_by_layer_on_keras_without_filters(monkeypatch, capsys) -> None:
    def model() -> keras.Model:
        m = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16), keras.layers.Embedding(4, 2),
                              keras.layers.Flatten(), keras.layers.Dense(1)])
        m(np.zeros((1, 8), "float32"))
        return m

    native = model()
    quantised = compress.quantize_int8(native, only=lambda layer: isinstance(layer, keras.layers.Dense))
    modes = {layer.name: getattr(layer, "quantization_mode", None) for layer in native.layers}
    assert sorted(quantised) == sorted(n for n, mode in modes.items() if mode == "int8") and len(quantised) == 2
    assert modes[native.layers[1].name] is None, "the Embedding is not picked"
    old = model()
    names = [layer.name for layer in old.layers if isinstance(layer, keras.layers.Dense)]

    def without_filters(mode, **kwargs):  # what Keras 3.10 answers
        raise ValueError(f"Unrecognized keyword arguments passed to Sequential: {kwargs}")

    monkeypatch.setattr(old, "quantize", without_filters)
    assert compress.quantize_int8(old, only=lambda layer: isinstance(layer, keras.layers.Dense)) == names
    assert "quantising the 2 picked layers one by one" in capsys.readouterr().out
    kinds = {layer.name: getattr(layer, "quantization_mode", None) for layer in old.layers}
    assert [kinds[n] for n in names] == ["int8", "int8"] and kinds[old.layers[1].name] is None  # Embedding left alone
