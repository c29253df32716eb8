"""Lesson 07 (compression): the magnitude-pruning mask, the distillation loss."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from kitlib.checks.core import (
    CheckFailed,
    call,
    call_on_copies,
    error_summary,
    expect,
    passed,
)

# Magnitudes with no ties, signs mixed so |w| matters, not w. Sorted by magnitude: 0.05, -0.1, -0.3, 0.5, -1.0, 2.0.
_PRUNE_WEIGHTS = np.array([[0.5, -0.1], [2.0, -0.3], [0.05, -1.0]], dtype=np.float32)


def magnitude_mask(fn: Callable[[np.ndarray, float], np.ndarray]) -> None:
    """Check `fn(weights, sparsity)` zeroes the round(sparsity * size) smallest |weights| and keeps the shape."""
    cases = [(0.5, [[1, 0], [1, 0], [0, 1]], "At sparsity 0.5, the 3 weights of smallest magnitude (0.05, -0.1, "
              "-0.3) are pruned; -1.0 is kept."),
             (0.0, [[1, 1], [1, 1], [1, 1]], "Sparsity 0 prunes nothing."),
             (0.8, [[0, 0], [1, 0], [0, 0]], "Sparsity 0.8 of 6 weights prunes round(4.8) = 5: only 2.0 is left."),
             (1 / 3, [[1, 0], [1, 1], [0, 1]], "Sparsity 1/3 of 6 weights prunes round(2.0) = 2.")]
    for sparsity, want, why in cases:
        got = np.asarray(call_on_copies(fn, _PRUNE_WEIGHTS, sparsity))
        expect(got.shape == _PRUNE_WEIGHTS.shape, "The mask has the shape of the weights.", _PRUNE_WEIGHTS.shape,
               got.shape, "Reshape the flat mask with `.reshape(weights.shape)`.")
        want = np.array(want, dtype=np.float32)
        pruned = int((got == 0).sum())
        if sparsity == 0 and pruned:
            hint = "With n = 0, no weight may be zeroed (beware index n - 1 == -1 and `order[:-0]`-style slices)."
        elif pruned == int(sparsity * _PRUNE_WEIGHTS.size) != int(round(sparsity * _PRUNE_WEIGHTS.size)):
            hint = "int() truncates 4.8 to 4: use int(round(sparsity * weights.size)), as the prompt says."
        elif pruned == int(round(sparsity * _PRUNE_WEIGHTS.size)):
            hint = "Sort by np.abs(weights), not by the signed values: -1.0 is a large weight."
        else:
            hint = "Zero the first int(round(sparsity * weights.size)) weights in order of np.abs(weights)."
        expect(np.array_equal(got.astype(np.float32), want), why, want.tolist(), got.tolist(), hint)
    kernel = np.random.default_rng(0).normal(size=(3, 3, 2, 4)).astype(np.float32)  # a Conv2D kernel
    got = np.asarray(call_on_copies(fn, kernel, 0.75))
    kept = np.abs(kernel)[got != 0]
    expect(got.shape == kernel.shape and int((got == 0).sum()) == 54 and kept.min() > np.abs(kernel)[got == 0].max(),
           "A 4-D convolution kernel (3, 3, 2, 4) at sparsity 0.75: the 54 smallest magnitudes pruned, shape kept.",
           "shape (3, 3, 2, 4), 54 zeros", f"shape {got.shape}, {int((got == 0).sum())} zeros",
           "Flatten with np.argsort(np.abs(weights), axis=None) and reshape the mask to weights.shape.")
    passed("the smallest-magnitude weights are masked, whatever their sign and the kernel's shape.")


def _reference(t: np.ndarray, s: np.ndarray, temperature: float) -> float:
    """T² · mean binary cross-entropy between sigmoid(t / T) and sigmoid(s / T), in NumPy."""
    q, p = 1 / (1 + np.exp(-t / temperature)), 1 / (1 + np.exp(-s / temperature))
    return float(np.mean(-(q * np.log(p) + (1 - q) * np.log(1 - p))) * temperature ** 2)


def _in_fit(fn: Callable, teacher: np.ndarray, student: np.ndarray, temperature: float) -> Any:
    """The loss as `compute_loss` computes it inside fit: float32 tensors in a traced tf.function."""
    import tensorflow as tf

    call(fn, tf.constant(teacher), tf.constant(student), temperature)  # eagerly first: the stub reads as usual
    traced = tf.function(lambda t, s: fn(t, s, temperature))
    try:
        return traced(tf.constant(teacher), tf.constant(student))
    except Exception as exc:
        raise CheckFailed("The loss fails inside fit, where it receives symbolic float32 tensors.\n"
                          f"  error: {error_summary(exc)}\n"
                          "  hint: use keras.ops (sigmoid, mean) and keras.losses.binary_crossentropy rather than "
                          "NumPy, and no Python float() or if on the tensors.") from exc


def distillation_loss(fn: Callable[[Any, Any, float], Any]) -> None:
    """Check `fn(teacher_logits, student_logits, T)` is T² · mean BCE(sigmoid(t/T), sigmoid(s/T)), inside fit too."""
    teacher = np.array([[2.0], [-1.0], [4.0]], dtype=np.float32)
    student = np.array([[0.0], [0.5], [1.0]], dtype=np.float32)
    got = _in_fit(fn, teacher, student, 2.0)
    expect(np.ndim(np.asarray(got)) == 0, "The loss is one number for the batch.", "a scalar",
           f"shape {np.shape(np.asarray(got))}", "Average over the batch with keras.ops.mean.")
    value, expected = float(np.asarray(got)), _reference(teacher, student, 2.0)
    close = lambda a, b: abs(a - b) < 1e-4  # noqa: E731
    if close(value, expected / 4):
        hint = "Multiply by temperature ** 2 (it keeps gradients on the hard-label loss's scale)."
    elif close(value, _reference(teacher * 2, student, 2.0)) or close(value, _reference(teacher, student * 2, 2.0)):
        hint = "Divide both the teacher's and the student's logits by the temperature."
    elif close(value, _reference(student, teacher, 2.0)):
        hint = "The teacher's softened probabilities are the targets, the first argument of binary_crossentropy."
    elif close(value, expected * len(teacher)):
        hint = "Average over the batch (keras.ops.mean), do not sum."
    else:
        hint = ("soft targets = sigmoid(teacher_logits / T); compare them with student_logits / T using "
                "binary_crossentropy(..., from_logits=True); mean; times T ** 2.")
    expect(close(value, expected), "The distillation loss at T = 2 on a known batch.", round(expected, 5),
           round(value, 5), hint)
    same = float(np.asarray(_in_fit(fn, teacher, teacher, 1.0)))
    expect(close(same, _reference(teacher, teacher, 1.0)), "At T = 1 with student = teacher, the loss is "
           "the entropy of the teacher's predictions (its minimum).", round(_reference(teacher, teacher, 1.0), 5),
           round(same, 5), "Use from_logits=True on the student's (scaled) logits.")
    passed("temperature-softened targets, scaled by T², averaged over the batch, inside a compiled training step.")
