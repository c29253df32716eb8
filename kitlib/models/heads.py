"""The one rule for a classifier's output, shared by every model the kit builds.

Two classes: one sigmoid unit (the probability of class 1) and binary cross-entropy; k > 2 classes: k softmax units
and sparse categorical cross-entropy. The output layer computes in float32 whatever the precision policy, as the
Keras mixed-precision guide says, so probabilities, losses and metrics stay exact under mixed_float16/bfloat16.
"""

from __future__ import annotations

from typing import Any

import keras


def _units(n_classes: int) -> int:
    """How many output units `n_classes` classes take: 1 for two, else one per class."""
    if n_classes < 2:
        raise ValueError(f"A classifier needs at least 2 classes (got n_classes={n_classes}).")
    return 1 if n_classes == 2 else n_classes


def output_layer(n_classes: int, seed: int | None = None, name: str | None = None) -> keras.layers.Dense:
    """The last layer for `n_classes`: one sigmoid unit for 2 classes, else k softmax units; always float32."""
    units = _units(n_classes)
    return keras.layers.Dense(units, activation="sigmoid" if units == 1 else "softmax", dtype="float32",
                              kernel_initializer=keras.initializers.GlorotUniform(seed), name=name)


def head(width: int, n_classes: int = 2, dropout: float = 0.1, seed: int | None = None) -> keras.Sequential:
    """A new classification head named "head": dropout, then `output_layer` (`width` features in).

    With a `seed`, its initial weights and dropout masks come from it, not from the global random state, so they
    do not depend on what ran before.
    """
    return keras.Sequential([keras.Input((width,)), keras.layers.Dropout(dropout, seed=seed),
                             output_layer(n_classes, seed)], name="head")


def mean_pooled(tokens: Any, mask: Any, n_classes: int = 2, dropout: float = 0.1, seed: int | None = None) -> Any:
    """Lesson 04's classifier on token vectors: their mean with padding left out (`mask`), then `head`."""
    mean = keras.layers.GlobalAveragePooling1D(name="mean_of_tokens")(tokens, mask=mask)
    return head(mean.shape[-1], n_classes, dropout, seed)(mean)


def loss_for(n_classes: int) -> str:
    """The loss matching `output_layer`: binary cross-entropy for 2 classes, sparse categorical for k."""
    return "binary_crossentropy" if _units(n_classes) == 1 else "sparse_categorical_crossentropy"


def classes_of(model: keras.Model) -> int:
    """How many classes a model built on `output_layer` tells apart (one sigmoid unit: 2)."""
    units = model.output.shape[-1]
    return 2 if units == 1 else units


def probabilities(outputs: Any) -> Any:
    """Class probabilities (n, k) in float32 from a batch of outputs: a one-unit sigmoid gives (1 - p, p)."""
    p = keras.ops.cast(outputs, "float32")
    return keras.ops.concatenate([1 - p, p], axis=1) if p.shape[-1] == 1 else p
