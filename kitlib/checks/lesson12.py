"""Lesson 12 (your own data): per-class recall from a confusion matrix, the most confident mistakes of k classes."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from kitlib.checks.core import call_on_copies, expect, passed

# rows: the truth, columns: the prediction; class 2 never occurs in this test split
_MATRIX = np.array([[8, 1, 1], [4, 4, 0], [0, 0, 0]])
_RECALL = np.array([0.8, 0.5, 0.0])

_PROBS = np.array([[0.70, 0.20, 0.10],   # 0: predicts 0, true 0 (right, confident)
                   [0.10, 0.30, 0.60],   # 1: predicts 2 at 0.60, true 0
                   [0.05, 0.90, 0.05],   # 2: predicts 1 at 0.90, true 1 (right, most confident of all)
                   [0.45, 0.15, 0.40],   # 3: predicts 0 at 0.45, true 2
                   [0.02, 0.80, 0.18],   # 4: predicts 1 at 0.80, true 2
                   [0.34, 0.33, 0.33]])  # 5: predicts 0 at 0.34, true 1
_TRUE = np.array([0, 0, 1, 2, 2, 1])
_MISTAKES = [4, 1, 3]  # wrong predictions, the most confident (highest predicted probability) first


def per_class_recall(fn: Callable[[np.ndarray], Any]) -> None:
    """Check `fn(matrix)` returns each class's recall: its diagonal count over its row, 0 for an empty row."""
    got = call_on_copies(fn, _MATRIX)
    got_array = np.asarray(got, dtype=float) if got is not None else np.array([])
    expect(got_array.shape == (3,), "One recall per class, in class order.", "an array of 3 numbers",
           np.shape(got) if got is not None else None, "Return the diagonal over the row sums: one value per row.")
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.diag(_MATRIX) / _MATRIX.sum(axis=0)
    mistakes = [
        (bool(np.isnan(got_array).any()), "Class 2 has no example in this split (an empty row): its recall counts as "
         "0, not NaN (0/0).", "np.divide(diagonal, rows, out=np.zeros(len(rows)), where=rows > 0)"),
        (np.allclose(np.nan_to_num(got_array), np.nan_to_num(precision)), "That is precision: the columns are the "
         "predictions. Recall divides by the rows, the examples that truly are each class.",
         "Divide the diagonal by matrix.sum(axis=1)."),
        (np.allclose(got_array, np.diag(_MATRIX) / _MATRIX.sum()), "That divides by every example: recall divides "
         "each class's correct count by that class's own examples (its row).", "Divide by matrix.sum(axis=1)."),
    ]
    for wrong, why, hint in mistakes:
        expect(not wrong, why, _RECALL.tolist(), got_array.round(4).tolist(), hint)
    expect(np.allclose(got_array, _RECALL), "Recall of class c: matrix[c, c] / matrix[c].sum().", _RECALL.tolist(),
           got_array.round(4).tolist(), "Rows are the truth, columns the prediction.")
    passed("per-class recall is the diagonal over the row sums, 0 for a class with no examples.")


def confident_mistakes(fn: Callable[[np.ndarray, np.ndarray, int], Any]) -> None:
    """Check `fn(probabilities, y_true, n)` returns the indices of the n most confident wrong predictions, k classes."""
    got = call_on_copies(fn, _PROBS, _TRUE, 3)
    try:
        got_list = [int(i) for i in np.asarray(got).ravel()]
    except (TypeError, ValueError):
        got_list = None
    expect(got_list is not None, "confident_mistakes returns example indices.", _MISTAKES, got,
           "Return an array or list of integer row indices into probabilities.")
    predicted = _PROBS.argmax(axis=1)
    true_prob_order = [int(i) for i in np.argsort(_PROBS[np.arange(len(_TRUE)), _TRUE]) if predicted[i] != _TRUE[i]][:3]
    mistakes = [
        (any(predicted[i] == _TRUE[i] for i in got_list if 0 <= i < len(_TRUE)), "Some of these are right "
         "answers: keep only the examples whose predicted class (argmax) differs from the truth.",
         "wrong = np.flatnonzero(probabilities.argmax(axis=1) != y_true)"),
        (got_list == _MISTAKES[::-1], "Least confident first: the most confident mistake comes first.",
         "Sort by the predicted probability in decreasing order (np.argsort(-confidence))."),
        (got_list == true_prob_order, "That ranks by the probability of the true class; the confidence of a "
         "prediction is the probability of the class it predicted (the row's maximum).",
         "confidence = probabilities.max(axis=1)"),
        (len(got_list) != 3, "Return exactly n indices (fewer only when there are fewer mistakes).",
         "Take the first n of the sorted mistakes."),
    ]
    for wrong, why, hint in mistakes:
        expect(not wrong, why, _MISTAKES, got_list, hint)
    expect(got_list == _MISTAKES, "The wrong predictions, the highest predicted probability first.", _MISTAKES,
           got_list, "Confidence is probabilities.max(axis=1); a mistake is argmax != y_true.")
    few = [int(i) for i in np.asarray(call_on_copies(fn, _PROBS[:2], _TRUE[:2], 5)).ravel()]
    expect(few == [1], "With fewer mistakes than n, return those there are.", [1], few,
           "Slice the sorted mistakes with [:n]; do not pad.")
    passed("the wrong predictions of k classes, the most confident first.")
