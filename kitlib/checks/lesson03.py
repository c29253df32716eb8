"""Lesson 03 (self-supervised pre-training): masked-LM targets, the causal attention mask."""

from __future__ import annotations

from typing import Callable

import numpy as np

from kitlib.checks.core import call, call_on_copies, expect, passed


def mlm_targets(fn: Callable[[np.ndarray, np.ndarray, int], tuple]) -> None:
    """Check `fn(token_ids, selected, mask_id)` returns (masked inputs, labels, weights) for masked-LM training."""
    ids = np.array([[2, 7, 8, 9, 3, 0], [2, 5, 6, 3, 0, 0]])
    selected = np.array([[0, 1, 0, 1, 0, 0], [0, 0, 1, 0, 0, 0]], dtype=bool)
    mask_id = 4
    got = call_on_copies(fn, ids, selected, mask_id)  # expectations below come from these pristine arrays
    expect(isinstance(got, (tuple, list)) and len(got) == 3, "Return three arrays: (inputs, labels, weights).",
           "(inputs, labels, weights)", type(got).__name__, "End with `return inputs, labels, weights`.")
    inputs, labels, weights = (np.asarray(x) for x in got)
    expect(inputs.shape == ids.shape and labels.shape == ids.shape and weights.shape == ids.shape,
           "All three arrays have the shape of token_ids.", ids.shape,
           [inputs.shape, labels.shape, weights.shape], "Work element-wise with np.where.")
    want_inputs = np.where(selected, mask_id, ids)
    expect(np.array_equal(inputs, want_inputs), "Selected positions become the [MASK] id; every other token stays "
           "as it was.", want_inputs.tolist(), inputs.tolist(), "inputs = np.where(selected, mask_id, token_ids)")
    want_labels = np.where(selected, ids, 0)
    if np.array_equal(labels * selected, ids * selected):
        hint = ("The unselected positions must be 0: `token_ids.copy()` keeps every token, which the model "
                "could read straight from its input. labels = np.where(selected, token_ids, 0)")
    else:
        hint = "The label at a selected position is the original token: labels = np.where(selected, token_ids, 0)"
    expect(np.array_equal(labels, want_labels), "The label at a masked position is the original token, the word "
           "the model must guess; 0 everywhere else.", want_labels.tolist(), labels.tolist(), hint)
    expect(np.array_equal(weights.astype("float32"), selected.astype("float32")),
           "The loss counts masked positions only: weight 1.0 there, 0.0 elsewhere.",
           selected.astype("float32").tolist(), weights.tolist(),
           "weights = selected.astype('float32'); unmasked tokens are visible, so guessing them teaches nothing.")
    passed("masked positions hide the token, keep it as the label, and are the only ones the loss counts.")


def causal_mask(fn: Callable[[int], np.ndarray]) -> None:
    """Check `fn(length)` returns the [length, length] mask letting position i see positions 0..i only."""
    for length in (4, 1, 6):
        got = np.asarray(call(fn, length))
        expected = np.tril(np.ones((length, length), dtype=bool))
        expect(got.shape == (length, length), "One row per position (the query), one column per position it may "
               f"look at (length {length}).", (length, length), got.shape, "Build a square [length, length] array.")
        got = got.astype(bool)
        if np.array_equal(got, expected.T):
            hint = "That is the transpose (np.triu): row i may look at columns 0..i, the past, not i..end."
        elif np.array_equal(got, np.tril(expected, -1)):
            hint = "Include the diagonal: a position sees itself (np.tril, not np.tril(..., -1))."
        else:
            hint = "Lower-triangular ones, diagonal included: np.tril(np.ones((length, length), dtype=bool))."
        expect(np.array_equal(got, expected), "Row i allows columns 0..i: a next-word model must not see the words "
               f"it is predicting (length {length}).", expected.astype(int).tolist(), got.astype(int).tolist(), hint)
    passed("each position sees itself and the past, never the future.")
