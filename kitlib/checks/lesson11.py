"""Lesson 11 (multi-class classification): a VGG-style k-class CNN, macro-averaged F1."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from kitlib.checks.core import (
    CheckFailed,
    call,
    call_on_copies,
    error_summary,
    exercise,
    expect,
    expect_unseen,
    passed,
    sublayers,
    tolerance,
    unseen_rng,
)

_F1_TRUE = np.array([0, 0, 0, 0, 0, 0, 1, 1, 2, 2])
_F1_PRED = np.array([0, 0, 0, 0, 0, 0, 0, 1, 0, 1])
_F1_CLASSES = (6 / 7, 0.5, 0.0)
_VGG_SECTION = "'The baseline: the source material's VGG, trained from scratch' in lesson 11"
_SOFTMAX_SECTION = "'From two classes to k: softmax and sparse categorical cross-entropy' in lesson 11"
_F1_SECTION = "'Reading a k-class classifier' in lesson 11"


def _sum_tolerance(model: Any) -> float:
    """How far from 1 a row of softmax probabilities may sum in the model's output dtype (mixed precision rounds)."""
    return max(1e-3, tolerance(getattr(model.layers[-1], "compute_dtype", None), ulps=2))


def _builds_other_sizes(build: Callable[[int, int], Any], image_size: int, n_classes: int) -> None:
    """Build the VGG for other class counts and another image size; fail unless each has those sizes."""
    for size, classes in [(image_size, n_classes + 3), (image_size + 8, 2)]:
        model = call(build, size, classes)
        x = np.random.default_rng(1).random((3, size, size, 3)).astype("float32")
        try:
            probs = np.asarray(model(x, training=False), dtype=np.float64)
        except Exception as exc:
            raise CheckFailed("A case not shown failed: the model built for another image size fails on images of "
                              f"that size.\n  error: {error_summary(exc)}\n  hint: build the input from the "
                              "image_size the function receives.") from exc
        sums_to_one = np.allclose(probs.sum(axis=1), 1.0, atol=_sum_tolerance(model))
        expect_unseen(probs.shape == (3, classes) and sums_to_one, "a model built for another number of classes or "
                      "another image size does not give one probability per class.",
                      "Build the input and the last layer from the arguments the function receives.")


@exercise("""
    inputs = keras.Input((image_size, image_size, 3)); for filters in (32, 64, 128): two
    keras.layers.Conv2D(filters, 3, padding="same", activation="relu") then keras.layers.MaxPooling2D();
    then Flatten, Dense(128, relu), Dropout, and keras.layers.Dense(n_classes, activation="softmax") last.
    """, "build_vgg")
def vgg_classifier(model: Any, image_size: int, n_classes: int, build: Callable[[int, int], Any] | None = None) -> None:
    """Check a VGG-style k-class CNN: blocks of two 3x3 convolutions, a softmax over `n_classes` out.

    Given the lesson's `build` function, also check it builds the model for other sizes and class counts.
    """
    import keras

    layers = [layer for layer in sublayers(model) if layer is not model]
    convs = [layer for layer in layers if isinstance(layer, keras.layers.Conv2D)]
    pools = [layer for layer in layers if isinstance(layer, keras.layers.MaxPooling2D)]
    expect(len(convs) >= 6 and len(pools) >= 3, "VGG stacks blocks of two 3x3 convolutions, each block ending in "
           "max-pooling.", ">= 3 blocks: >= 6 Conv2D and >= 3 MaxPooling2D",
           f"{len(convs)} Conv2D, {len(pools)} MaxPooling2D", f"Count the layers of one block in {_VGG_SECTION}.")
    last = layers[-1]
    units, activation = getattr(last, "units", None), getattr(last, "activation", None)
    expect(units == n_classes, "A k-class classifier ends in one unit per class.", f"Dense({n_classes}, ...)",
           f"{type(last).__name__} with units={units}", "The last layer has as many units as there are classes.")
    expect(activation is keras.activations.softmax, "Softmax turns the k scores into probabilities that sum to 1 "
           "(sigmoid would score each class on its own).", "activation='softmax'",
           f"activation={getattr(activation, '__name__', activation)}", f"See {_SOFTMAX_SECTION}.")
    x = np.random.default_rng(0).random((2, image_size, image_size, 3)).astype("float32")
    probs = np.asarray(model(x, training=False), dtype=np.float64)
    expect(probs.shape == (2, n_classes), "One probability per class for each image.", (2, n_classes), probs.shape,
           "The last feature maps become one vector per image before the Dense layers.")
    expect(bool(np.allclose(probs.sum(axis=1), 1.0, atol=_sum_tolerance(model))), "Each row of probabilities sums "
           "to 1.",
           [1.0, 1.0], probs.sum(axis=1).round(4).tolist(), f"See {_SOFTMAX_SECTION}.")
    if build is not None:
        _builds_other_sizes(build, image_size, n_classes)
    passed(f"{len(convs)} convolutions in {len(pools)} blocks, a softmax over {n_classes} classes.")


def _per_class_f1(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Each class's F1, 0 for a class with no true and no predicted example."""
    f1 = []
    for c in range(n_classes):
        tp, predicted, actual = np.sum((y_pred == c) & (y_true == c)), np.sum(y_pred == c), np.sum(y_true == c)
        f1.append(2 * tp / (predicted + actual) if predicted + actual else 0.0)
    return np.array(f1)


def _f1_number(got: object) -> float | None:
    """The answer as a float, or None when it is not a number."""
    try:
        return float(got)
    except (TypeError, ValueError):
        return None


def _f1_mistake(got: float, y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> tuple[str, str] | None:
    """(what, hint) of the known mistake `got` matches, or None."""
    per_class = _per_class_f1(y_true, y_pred, n_classes)
    want = float(np.mean(per_class))
    present = np.unique(y_pred)
    precision = np.array([np.mean(y_true[y_pred == c] == c) if np.any(y_pred == c) else 0.0 for c in range(n_classes)])
    recall = np.array([np.mean(y_pred[y_true == c] == c) if np.any(y_true == c) else 0.0 for c in range(n_classes)])
    p, r = precision.mean(), recall.mean()
    mistakes = [
        (np.isnan(got), "A class that is never predicted has precision 0/0: its F1 counts as 0, not NaN.",
         "Treat 0/0 as 0 when a class has no predicted (or no true) example."),
        (np.isclose(got, np.mean(y_true == y_pred)), "That is the micro average (pooled over all examples, equal to "
         "accuracy for single-label data): macro averages the per-class F1, so every class weighs the same.",
         f"Compute F1 for each class from its own counts, then take the plain mean: see {_F1_SECTION}."),
        (np.isclose(got, np.mean(per_class[present])), "A class that is never predicted is missing from the labels "
         "that appear in the predictions: the macro average must still count it, with F1 0.",
         "Loop over every one of the n_classes classes, not over the labels that happen to appear."),
        (np.isclose(got, np.mean(per_class[np.unique(y_true)])), "A class absent from this batch (no true and no "
         "predicted example) still counts: n_classes says how many classes there are.",
         "Loop over every one of the n_classes classes, not over the labels that happen to appear."),
        (np.isclose(got, np.average(per_class, weights=np.bincount(y_true, minlength=n_classes))), "That is the "
         "support-weighted average: macro gives every class the same weight.", "Take the plain mean."),
        (np.isclose(got, 2 * p * r / (p + r) if p + r else 0.0), "That is the F1 of the averaged precision and "
         "recall: macro-F1 averages the per-class F1 scores instead.", "Compute F1 per class first, then average."),
    ]
    return next(((what, hint) for wrong, what, hint in mistakes if wrong and not np.isclose(got, want)), None)


@exercise("""
    for c in range(n_classes): tp = np.sum((y_pred == c) & (y_true == c)); precision = tp / np.sum(y_pred == c)
    and recall = tp / np.sum(y_true == c), each 0 when its denominator is 0; f1 = 2 * precision * recall /
    (precision + recall), 0 when both are 0. return float(np.mean(f1s))
    """, "macro_f1")
def macro_f1(fn: Callable[[np.ndarray, np.ndarray, int], float]) -> None:
    """Check `fn(y_true, y_pred, n_classes)` averages the per-class F1 over every class, a never-predicted one too."""
    got = _f1_number(call_on_copies(fn, _F1_TRUE, _F1_PRED, 3))
    expect(got is not None, "macro_f1 returns one number.", "a float such as 0.45", "not a number",
           "Return the mean of the per-class F1 scores as a float.")
    want = float(np.mean(_F1_CLASSES))
    mistake = _f1_mistake(got, _F1_TRUE, _F1_PRED, 3)
    if mistake:
        expect(False, mistake[0], round(want, 4), round(got, 4) if not np.isnan(got) else got, mistake[1])
    expect(np.isclose(got, want), "Per-class F1 here is 6/7, 1/2 and 0; macro-F1 is their mean.", round(want, 4),
           round(got, 4), f"F1 is the harmonic mean of a class's precision and recall: see {_F1_SECTION}.")
    perfect = _f1_number(call_on_copies(fn, np.arange(10) % 4, np.arange(10) % 4, 4))
    expect(perfect is not None and np.isclose(perfect, 1.0), "Perfect predictions give macro-F1 1.", 1.0, perfect,
           "Check the per-class F1 formula.")
    rng = unseen_rng("macro_f1")
    for size, n_classes in [(40, 6), (15, 4)]:
        y_true = rng.integers(0, n_classes - 1, size)  # the last class never occurs in this batch
        y_pred = np.where(rng.random(size) < 0.6, y_true, rng.integers(0, n_classes - 1, size))
        y_pred[y_pred == 1] = 0  # and class 1 is never predicted
        got = _f1_number(call_on_copies(fn, y_true, y_pred, n_classes, shown=False))
        ok = got is not None and np.isclose(got, float(np.mean(_per_class_f1(y_true, y_pred, n_classes))))
        mistake = _f1_mistake(got, y_true, y_pred, n_classes) if got is not None else None
        expect_unseen(ok, "another batch, another number of classes, a class absent from the batch: "
                      f"{mistake[0] if mistake else 'the macro-F1 is not right.'}",
                      mistake[1] if mistake else f"See {_F1_SECTION}.")
    passed("the per-class F1 averaged over every class, the never-predicted and the absent ones included.")
