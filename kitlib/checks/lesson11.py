"""Lesson 11 (multi-class classification): a VGG-style k-class CNN, macro-averaged F1."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from kitlib.checks.core import call_on_copies, expect, passed, sublayers

_F1_TRUE = np.array([0, 0, 0, 0, 0, 0, 1, 1, 2, 2])
_F1_PRED = np.array([0, 0, 0, 0, 0, 0, 0, 1, 0, 1])
_F1_CLASSES = (6 / 7, 0.5, 0.0)


def vgg_classifier(model: Any, image_size: int, n_classes: int) -> None:
    """Check a VGG-style k-class CNN: blocks of two 3x3 convolutions, a softmax over `n_classes` out."""
    import keras

    layers = [layer for layer in sublayers(model) if layer is not model]
    convs = [layer for layer in layers if isinstance(layer, keras.layers.Conv2D)]
    pools = [layer for layer in layers if isinstance(layer, keras.layers.MaxPooling2D)]
    expect(len(convs) >= 6 and len(pools) >= 3, "VGG stacks blocks of two 3x3 convolutions, each block ending in "
           "max-pooling.", ">= 3 blocks: >= 6 Conv2D and >= 3 MaxPooling2D",
           f"{len(convs)} Conv2D, {len(pools)} MaxPooling2D",
           "Per block: Conv2D(f, 3, padding='same', activation='relu') twice, then MaxPooling2D(); f = 32, 64, 128.")
    last = layers[-1]
    units, activation = getattr(last, "units", None), getattr(last, "activation", None)
    expect(units == n_classes, "A k-class classifier ends in one unit per class.", f"Dense({n_classes}, ...)",
           f"{type(last).__name__} with units={units}", "End with keras.layers.Dense(n_classes, activation='softmax').")
    expect(activation is keras.activations.softmax, "Softmax turns the k scores into probabilities that sum to 1 "
           "(sigmoid would score each class on its own).", "activation='softmax'",
           f"activation={getattr(activation, '__name__', activation)}", "Pass activation='softmax' to the last Dense.")
    x = np.random.default_rng(0).random((2, image_size, image_size, 3)).astype("float32")
    probs = np.asarray(model(x, training=False), dtype=np.float64)
    expect(probs.shape == (2, n_classes), "One probability per class for each image.", (2, n_classes), probs.shape,
           "Flatten (or pool) the last feature maps before the Dense layers.")
    expect(bool(np.allclose(probs.sum(axis=1), 1.0, atol=1e-3)), "Each row of probabilities sums to 1.",
           [1.0, 1.0], probs.sum(axis=1).round(4).tolist(), "Use activation='softmax' on the last Dense layer.")
    passed(f"{len(convs)} convolutions in {len(pools)} blocks, a softmax over {n_classes} classes.")


def macro_f1(fn: Callable[[np.ndarray, np.ndarray, int], float]) -> None:
    """Check `fn(y_true, y_pred, n_classes)` averages the per-class F1 over every class, a never-predicted one too."""
    got = call_on_copies(fn, _F1_TRUE, _F1_PRED, 3)
    try:
        got = float(got)
    except (TypeError, ValueError):
        expect(False, "macro_f1 returns one number.", "a float such as 0.45", type(got).__name__,
               "Return the mean of the per-class F1 scores: float(np.mean(f1)).")
    want = float(np.mean(_F1_CLASSES))
    accuracy = float(np.mean(_F1_TRUE == _F1_PRED))
    precision, recall = np.mean([0.75, 0.5, 0.0]), np.mean([1.0, 0.5, 0.0])
    mistakes = [
        (np.isnan(got), "A class that is never predicted has precision 0/0: its F1 counts as 0, not NaN.",
         "Divide with np.divide(..., out=np.zeros_like(...), where=denominator > 0), or treat 0/0 as 0."),
        (np.isclose(got, accuracy), "That is the micro average (pooled over all examples, equal to accuracy for "
         "single-label data): macro averages the per-class F1, so every class weighs the same.",
         "Compute F1 for each class from its own TP, FP and FN, then take the plain mean."),
        (np.isclose(got, np.mean(_F1_CLASSES[:2])), "Class 2 is never predicted, so it is missing from "
         "np.unique(y_pred): the macro average must still count it, with F1 0.",
         "Loop over range(n_classes), not over the labels that happen to appear in the predictions."),
        (np.isclose(got, np.average(_F1_CLASSES, weights=np.bincount(_F1_TRUE))), "That is the support-weighted "
         "average: macro gives every class the same weight.", "Take the plain mean of the per-class F1 scores."),
        (np.isclose(got, 2 * precision * recall / (precision + recall)), "That is the F1 of the averaged precision "
         "and recall: macro-F1 averages the per-class F1 scores instead.",
         "Compute F1 per class first, then average."),
    ]
    for wrong, why, hint in mistakes:
        expect(not wrong, why, round(want, 4), round(got, 4) if not np.isnan(got) else got, hint)
    expect(np.isclose(got, want), "Per-class F1 here is 6/7, 1/2 and 0; macro-F1 is their mean.", round(want, 4),
           round(got, 4), "F1 = 2PR / (P + R) per class, with P = TP / predicted and R = TP / actual.")
    perfect = float(call_on_copies(fn, np.arange(10) % 4, np.arange(10) % 4, 4))
    expect(np.isclose(perfect, 1.0), "Perfect predictions give macro-F1 1.", 1.0, perfect,
           "Check the per-class F1 formula: 2 * precision * recall / (precision + recall).")
    passed("the per-class F1 averaged over every class, the never-predicted one included.")
