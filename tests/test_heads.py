"""The one head rule: output layer, loss and probabilities for k classes, in float32 under every precision policy."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from kitlib.models import heads


def test_two_classes_take_one_sigmoid_unit_and_k_classes_k_softmax_units() -> None:
    two, three = heads.output_layer(2), heads.output_layer(3)
    assert (two.units, two.activation.__name__) == (1, "sigmoid")
    assert (three.units, three.activation.__name__) == (3, "softmax")
    assert heads.loss_for(2) == "binary_crossentropy" and heads.loss_for(3) == "sparse_categorical_crossentropy"
    with pytest.raises(ValueError, match="at least 2 classes"):
        heads.output_layer(1)
    with pytest.raises(ValueError, match="at least 2 classes"):
        heads.loss_for(0)


def test_seeded_head_draws_the_same_weights_whatever_the_global_state() -> None:
    weights = []
    for global_seed in (1, 7):
        keras.utils.set_random_seed(global_seed)
        weights.append(heads.head(8, 3, 0.1, seed=5).get_weights())
    assert all(np.array_equal(a, b) for a, b in zip(*weights))


def test_head_computes_in_float32_under_every_policy(policy: str) -> None:
    inputs = keras.Input((4,))
    features = keras.layers.Dense(8)(inputs)  # computes in the policy's dtype
    model = keras.Model(inputs, heads.head(8, 3, 0.0, seed=1)(features))
    assert keras.backend.standardize_dtype(features.dtype) == keras.mixed_precision.global_policy().compute_dtype
    assert keras.backend.standardize_dtype(model.output.dtype) == "float32"
    p = model.predict(np.ones((2, 4), "float32"), verbose=0)
    assert p.dtype == np.float32 and np.allclose(p.sum(axis=1), 1, atol=1e-6), "softmax in float32 sums to 1"
    assert all(v.dtype == "float32" for v in model.weights), "variables stay float32"
    assert heads.classes_of(model) == 3


def test_probabilities_of_one_sigmoid_unit_are_both_classes(policy: str) -> None:
    p = np.asarray(heads.probabilities(np.array([[0.25], [0.9]], "float16")))
    assert p.dtype == np.float32 and np.allclose(p, [[0.75, 0.25], [0.1, 0.9]], atol=1e-3)
    k = np.asarray(heads.probabilities(np.array([[0.2, 0.3, 0.5]], "float32")))
    assert np.array_equal(k, np.array([[0.2, 0.3, 0.5]], "float32"))


def test_mean_pooled_leaves_padding_out(policy: str) -> None:
    tokens, mask = keras.Input((3, 2)), keras.Input((3,), dtype="int32")
    model = keras.Model([tokens, mask], heads.mean_pooled(tokens, mask, 2, 0.0, seed=3))
    x = np.array([[[1, 2], [3, 4], [0, 0]]], "float32")
    m = np.array([[1, 1, 0]], "int32")
    p = model.predict([x, m], verbose=0)
    padded = model.predict([np.where(m[..., None] == 1, x, 99.0), m], verbose=0)
    assert heads.classes_of(model) == 2 and p.dtype == np.float32
    assert np.allclose(p, padded), "what lies under the padding must not reach the mean"
    dense = model.get_layer("head").layers[-1]
    expected = 1 / (1 + np.exp(-(np.array([2.0, 3.0]) @ dense.kernel.numpy() + dense.bias.numpy())))
    assert np.allclose(p[0], expected, atol=1e-2 if policy != "float32" else 1e-6)
