"""Lesson 07 (compression): the magnitude-pruning mask, the distillation loss."""

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
    unseen_rng,
)

# Magnitudes with no ties, signs mixed so |w| matters, not w. Sorted by magnitude: 0.05, -0.1, -0.3, 0.5, -1.0, 2.0.
_PRUNE_WEIGHTS = np.array([[0.5, -0.1], [2.0, -0.3], [0.05, -1.0]], dtype=np.float32)
_PRUNE_SECTION = "'Magnitude pruning' in lesson 07"
_DISTIL_SECTION = "'Knowledge distillation' in lesson 07"


def _mask(scores: np.ndarray, n: int) -> np.ndarray:
    """1 everywhere but at the n lowest `scores` of the whole tensor."""
    flat = np.ones(scores.size, np.float32)
    flat[np.argsort(scores, axis=None, kind="stable")[:n]] = 0.0
    return flat.reshape(scores.shape)


def _per_row_mask(weights: np.ndarray, sparsity: float) -> np.ndarray:
    """The mistake of ranking within each row (argsort's default last axis): each row pruned on its own."""
    n = int(round(sparsity * weights.shape[-1]))
    mask = np.ones(weights.shape, np.float32)
    np.put_along_axis(mask, np.argsort(np.abs(weights), axis=-1, kind="stable")[..., :n], 0.0, axis=-1)
    return mask


def _prune_hint(got: np.ndarray, weights: np.ndarray, sparsity: float) -> str:
    """Name the mistake a wrong mask matches exactly, or point to the lesson."""
    n = int(round(sparsity * weights.size))
    pruned = int((got == 0).sum())
    if got.shape != weights.shape:
        return "The mask has one value per weight, in the weights' shape."
    if np.array_equal(got, _per_row_mask(weights, sparsity)) and weights.ndim > 1:
        return ("That prunes within each row (np.argsort sorts along the last axis unless told otherwise): rank "
                "every weight of the tensor together.")
    if sparsity == 0 and pruned:
        return "With n = 0, no weight may be zeroed (beware index n - 1 == -1 and `order[:-0]`-style slices)."
    if int(sparsity * weights.size) != n and np.array_equal(got, _mask(np.abs(weights), int(sparsity * weights.size))):
        return "int() truncates (4.8 becomes 4): the prompt rounds to the nearest whole number of weights."
    if np.array_equal(got, _mask(weights, n)):
        return "That ranks the signed values: -1.0 is a large weight. Rank by magnitude."
    if pruned == n:
        return f"The right number of weights is pruned, but not the smallest magnitudes: see {_PRUNE_SECTION}."
    return f"Prune round(sparsity x number of weights) weights, those of smallest magnitude: see {_PRUNE_SECTION}."


@exercise("""
    n_pruned = int(round(sparsity * weights.size)); order = np.argsort(np.abs(weights), axis=None) (flat indices,
    smallest magnitude first); mask = np.ones(weights.size, np.float32); mask[order[:n_pruned]] = 0.0;
    return mask.reshape(weights.shape)
    """, "magnitude_mask")
def magnitude_mask(fn: Callable[[np.ndarray, float], np.ndarray]) -> None:
    """Check `fn(weights, sparsity)` zeroes the round(sparsity * size) smallest |weights| and keeps the shape."""
    cases = [(0.5, "At sparsity 0.5, the 3 weights of smallest magnitude (0.05, -0.1, -0.3) are pruned; -1.0 is "
              "kept."),
             (0.0, "Sparsity 0 prunes nothing."),
             (0.8, "Sparsity 0.8 of 6 weights prunes round(4.8) = 5: only 2.0 is left."),
             (1 / 3, "Sparsity 1/3 of 6 weights prunes round(2.0) = 2.")]
    for sparsity, why in cases:
        got = np.asarray(call_on_copies(fn, _PRUNE_WEIGHTS, sparsity))
        want = _mask(np.abs(_PRUNE_WEIGHTS), int(round(sparsity * _PRUNE_WEIGHTS.size)))
        expect(got.shape == _PRUNE_WEIGHTS.shape, "The mask has the shape of the weights.", _PRUNE_WEIGHTS.shape,
               got.shape, "One mask value per weight: give the flat mask the weights' shape back.")
        expect(np.array_equal(got.astype(np.float32), want), why, want.astype(int).tolist(), got.tolist(),
               _prune_hint(got, _PRUNE_WEIGHTS, sparsity))
    kernel = np.random.default_rng(0).normal(size=(3, 3, 2, 4)).astype(np.float32)  # a Conv2D kernel
    got = np.asarray(call_on_copies(fn, kernel, 0.75))
    ok = got.shape == kernel.shape and np.array_equal(got, _mask(np.abs(kernel), 54))
    expect(ok, "A 4-D convolution kernel (3, 3, 2, 4) at sparsity 0.75: the 54 smallest magnitudes pruned, shape "
           "kept.", "shape (3, 3, 2, 4), 54 zeros", f"shape {got.shape}, {int((got == 0).sum())} zeros",
           _prune_hint(got, kernel, 0.75))
    rng = unseen_rng("magnitude_mask")
    for shape in [(4, 5), (2, 3, 7), (11,)]:
        weights = rng.normal(size=shape).astype(np.float32)
        sparsity = float(rng.uniform(0.05, 0.95))
        got = np.asarray(call_on_copies(fn, weights, sparsity, shown=False))
        want = _mask(np.abs(weights), int(round(sparsity * weights.size)))
        expect_unseen(got.shape == want.shape and np.array_equal(got.astype(np.float32), want), "other weights, "
                      "another shape and another sparsity: the mask is not right.", _prune_hint(got, weights, sparsity))
    passed("the smallest-magnitude weights are masked, whatever their sign and the kernel's shape.")


def _reference(t: np.ndarray, s: np.ndarray, temperature: float) -> float:
    """T² · mean binary cross-entropy between sigmoid(t / T) and sigmoid(s / T), in NumPy."""
    q, p = 1 / (1 + np.exp(-t / temperature)), 1 / (1 + np.exp(-s / temperature))
    return float(np.mean(-(q * np.log(p) + (1 - q) * np.log(1 - p))) * temperature ** 2)


def _in_fit(fn: Callable, teacher: np.ndarray, student: np.ndarray, temperature: float, shown: bool = True) -> float:
    """The loss as `compute_loss` computes it inside fit (float32 tensors in a traced tf.function), as one number."""
    import tensorflow as tf

    if shown:
        call(fn, tf.constant(teacher), tf.constant(student), temperature)  # eagerly first: the stub reads as usual
    traced = tf.function(lambda t, s: fn(t, s, temperature))
    try:
        got = np.asarray(traced(tf.constant(teacher), tf.constant(student)))
    except Exception as exc:
        raise CheckFailed("The loss fails inside fit, where it receives symbolic float32 tensors.\n"
                          f"  error: {error_summary(exc)}\n"
                          "  hint: the exercise's prompt names the library whose functions run on those tensors; "
                          "NumPy, Python float() and `if` on a tensor do not.") from exc
    expect(np.ndim(got) == 0, "The loss is one number for the batch.", "a scalar", f"shape {np.shape(got)}",
           "Average the per-example losses over the batch.")
    return float(got)


def _distil_hint(value: float, teacher: np.ndarray, student: np.ndarray, temperature: float) -> str:
    """Name the mistake a wrong loss matches, or point to the lesson."""
    close = lambda a, b: abs(a - b) < 1e-4 * max(1.0, abs(b))  # noqa: E731
    expected = _reference(teacher, student, temperature)
    if close(value, expected / temperature ** 2):
        return "The T² factor is missing (it keeps the gradients on the hard-label loss's scale whatever T is)."
    if any(close(value, _reference(t, s, temperature)) for t, s in [(teacher * temperature, student),
                                                                     (teacher, student * temperature)]):
        return "Soften both sets of logits: the teacher's and the student's are both divided by the temperature."
    if close(value, _reference(student, teacher, temperature)):
        return "The targets are the teacher's softened probabilities; the student's logits are what is scored."
    if close(value, expected * len(teacher)):
        return "That is a sum over the batch: the loss is the mean, so that it does not grow with the batch size."
    return f"See {_DISTIL_SECTION}: soften, compare with binary cross-entropy on logits, average, rescale."


@exercise("""
    soft_targets = keras.ops.sigmoid(teacher_logits / temperature);
    per_example = keras.losses.binary_crossentropy(soft_targets, student_logits / temperature, from_logits=True);
    return keras.ops.mean(per_example) * temperature ** 2
    """, "distillation_loss")
def distillation_loss(fn: Callable[[Any, Any, float], Any]) -> None:
    """Check `fn(teacher_logits, student_logits, T)` is T² · mean BCE(sigmoid(t/T), sigmoid(s/T)), inside fit too."""
    teacher = np.array([[2.0], [-1.0], [4.0]], dtype=np.float32)
    student = np.array([[0.0], [0.5], [1.0]], dtype=np.float32)
    value, expected = _in_fit(fn, teacher, student, 2.0), _reference(teacher, student, 2.0)
    expect(abs(value - expected) < 1e-4, "The distillation loss at T = 2 on a known batch.", round(expected, 5),
           round(value, 5), _distil_hint(value, teacher, student, 2.0))
    same, want = _in_fit(fn, teacher, teacher, 1.0), _reference(teacher, teacher, 1.0)
    expect(abs(same - want) < 1e-4, "At T = 1 with student = teacher, the loss is the entropy of the teacher's "
           "predictions (its minimum).", round(want, 5), round(same, 5), _distil_hint(same, teacher, teacher, 1.0))
    rng = unseen_rng("distillation_loss")
    for batch, temperature in [(5, float(rng.uniform(1.5, 6.0))), (8, float(rng.uniform(1.5, 6.0)))]:
        teacher = rng.normal(0, 3, (batch, 1)).astype(np.float32)
        student = rng.normal(0, 3, (batch, 1)).astype(np.float32)
        value = _in_fit(fn, teacher, student, temperature, shown=False)
        expect_unseen(abs(value - _reference(teacher, student, temperature)) < 1e-3 * max(1.0, temperature ** 2),
                      "another batch size, other logits and another temperature: the loss is not right.",
                      _distil_hint(value, teacher, student, temperature))
    passed("temperature-softened targets, scaled by T², averaged over the batch, inside a compiled training step.")
