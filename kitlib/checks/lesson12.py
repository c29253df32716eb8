"""Lesson 12 (your own data): per-class recall from a confusion matrix, the most confident mistakes of k classes."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from kitlib.checks.core import call_on_copies, exercise, expect, expect_unseen, passed, unseen_rng

# rows: the truth, columns: the prediction; class 2 never occurs in this test split
_MATRIX = np.array([[8, 1, 1], [4, 4, 0], [0, 0, 0]])

_PROBS = np.array([[0.70, 0.20, 0.10],   # 0: predicts 0, true 0 (right, confident)
                   [0.10, 0.30, 0.60],   # 1: predicts 2 at 0.60, true 0
                   [0.05, 0.90, 0.05],   # 2: predicts 1 at 0.90, true 1 (right, most confident of all)
                   [0.45, 0.15, 0.40],   # 3: predicts 0 at 0.45, true 2
                   [0.02, 0.80, 0.18],   # 4: predicts 1 at 0.80, true 2
                   [0.34, 0.33, 0.33]])  # 5: predicts 0 at 0.34, true 1
_TRUE = np.array([0, 0, 1, 2, 2, 1])
_RECALL_SECTION = "'Class by class' in lesson 12"
_MISTAKES_SECTION = "'The most confident mistakes' in lesson 12"


def _recall(matrix: np.ndarray) -> np.ndarray:
    """The reference: the diagonal over the row sums, 0 for an empty row."""
    rows = matrix.sum(axis=1)
    return np.divide(np.diag(matrix), rows, out=np.zeros(len(rows)), where=rows > 0)


def _as_floats(got: Any) -> np.ndarray:
    """The answer as a float array (empty when it is None or not numbers)."""
    try:
        return np.asarray(got, dtype=float) if got is not None else np.array([])
    except (TypeError, ValueError):
        return np.array([])


def _recall_mistake(got: np.ndarray, matrix: np.ndarray) -> str | None:
    """The hint naming the known mistake `got` matches, or None."""
    with np.errstate(invalid="ignore", divide="ignore"):
        rows, columns, diagonal = matrix.sum(axis=1), matrix.sum(axis=0), np.diag(matrix)
        mistakes = [
            (bool(np.isnan(got).any()), "A class with no example in the split (an empty row) has recall 0/0: it "
             "counts as 0, not NaN."),
            (np.array_equal(got, np.floor_divide(diagonal, np.where(rows > 0, rows, 1))) and not np.allclose(
                got, _recall(matrix)), "// is integer division: any recall below 1 becomes 0. Divide as floats."),
            (np.allclose(np.nan_to_num(got), np.nan_to_num(diagonal / columns)), "That is precision: the columns "
             "are the predictions. Recall divides by the rows, the examples that truly are each class."),
            (np.allclose(got, diagonal / matrix.sum()), "That divides by every example: recall divides each class's "
             "correct count by that class's own examples (its row)."),
        ]
    return next((hint for wrong, hint in mistakes if wrong), None)


@exercise("""
    rows = matrix.sum(axis=1); return np.divide(np.diag(matrix), rows, out=np.zeros(len(rows)), where=rows > 0)
    """, "per_class_recall")
def per_class_recall(fn: Callable[[np.ndarray], Any]) -> None:
    """Check `fn(matrix)` returns each class's recall: its diagonal count over its row, 0 for an empty row."""
    want = _recall(_MATRIX)
    got = _as_floats(call_on_copies(fn, _MATRIX))
    expect(got.shape == want.shape, "One recall per class, in class order.", "an array of 3 numbers", got.shape,
           "One value per row of the matrix.")
    hint = _recall_mistake(got, _MATRIX)
    expect(hint is None and np.allclose(got, want), "Recall of class c: its correct count over its own examples "
           "(rows are the truth, columns the prediction).", want.tolist(), got.round(4).tolist(),
           hint or f"See {_RECALL_SECTION}.")
    rng = unseen_rng("per_class_recall")
    for classes in (5, 2):
        matrix = rng.integers(0, 30, (classes, classes))
        matrix[int(rng.integers(0, classes))] = 0  # a class with no example in this split
        with np.errstate(invalid="ignore", divide="ignore"):
            got = _as_floats(call_on_copies(fn, matrix, shown=False))
        ok = got.shape == (classes,) and np.allclose(got, _recall(matrix))
        expect_unseen(ok, "another matrix, another number of classes, one class without examples: the recalls are "
                      "not right.", (_recall_mistake(got, matrix) if got.shape == (classes,) else None)
                      or "Work for a matrix of any size.")
    passed("per-class recall is the diagonal over the row sums, 0 for a class with no examples.")


def _mistakes(probabilities: np.ndarray, y_true: np.ndarray, n: int) -> list[int]:
    """The reference: the wrong predictions, the most confident first, at most n."""
    wrong = np.flatnonzero(probabilities.argmax(axis=1) != y_true)
    return [int(i) for i in wrong[np.argsort(-probabilities.max(axis=1)[wrong], kind="stable")][:n]]


def _indices(got: Any) -> list[int] | None:
    """The answer as a list of ints, or None when it is not indices."""
    try:
        return [int(i) for i in np.asarray(got).ravel()]
    except (TypeError, ValueError):
        return None


def _mistakes_hint(got: list[int], probabilities: np.ndarray, y_true: np.ndarray, n: int) -> str:
    """Name the mistake a wrong answer matches, or point to the lesson."""
    predicted = probabilities.argmax(axis=1)
    want = _mistakes(probabilities, y_true, n)
    wrong = np.flatnonzero(predicted != y_true)
    by_true = [int(i) for i in wrong[np.argsort(probabilities[wrong, y_true[wrong]], kind="stable")][:n]]
    if any(0 <= i < len(y_true) and predicted[i] == y_true[i] for i in got):
        return "Some of these are right answers: a mistake is an example whose predicted class differs from the truth."
    if got == _mistakes(probabilities, y_true, len(y_true))[::-1][:n] or (len(got) > 1 and got == want[::-1]):
        return "Least confident first: the most confident mistake comes first."
    if got == by_true and got != want:
        return ("That ranks by the probability of the true class; the confidence of a prediction is the "
                "probability of the class it predicted.")
    if len(got) != min(n, len(wrong)):
        return "Return n indices, or fewer only when there are fewer mistakes; never pad."
    return f"A prediction's confidence is the probability of the class it predicted: see {_MISTAKES_SECTION}."


@exercise("""
    confidence = probabilities.max(axis=1); wrong = np.flatnonzero(probabilities.argmax(axis=1) != y_true);
    return wrong[np.argsort(-confidence[wrong])][:n]
    """, "confident_mistakes")
def confident_mistakes(fn: Callable[[np.ndarray, np.ndarray, int], Any]) -> None:
    """Check `fn(probabilities, y_true, n)` returns the indices of the n most confident wrong predictions, k classes."""
    for probabilities, y_true, n, what in [
            (_PROBS, _TRUE, 3, "The wrong predictions, the highest predicted probability first."),
            (_PROBS[:2], _TRUE[:2], 5, "With fewer mistakes than n, return those there are.")]:
        want = _mistakes(probabilities, y_true, n)
        got = _indices(call_on_copies(fn, probabilities, y_true, n))
        expect(got is not None, "confident_mistakes returns example indices.", want, "not a list of indices",
               "Return integer row indices into probabilities.")
        expect(got == want, what, want, got, _mistakes_hint(got, probabilities, y_true, n))
    rng = unseen_rng("confident_mistakes")
    for size, classes, n in [(30, 5, 4), (12, 3, 1), (8, 4, 20)]:
        probabilities = rng.dirichlet(np.ones(classes), size)
        y_true = rng.integers(0, classes - 1, size)  # the last class never occurs in the truth
        got = _indices(call_on_copies(fn, probabilities, y_true, n, shown=False))
        expect_unseen(got == _mistakes(probabilities, y_true, n), "other probabilities, another number of classes "
                      "and another n: these are not the n most confident mistakes, most confident first.",
                      _mistakes_hint(got, probabilities, y_true, n) if got is not None else "Return indices.")
    passed("the wrong predictions of k classes, the most confident first.")
