"""Lesson 03 (self-supervised pre-training): masked-LM targets, the causal attention mask."""

from __future__ import annotations

from typing import Callable

import numpy as np

from kitlib.checks.core import call, call_on_copies, exercise, expect, expect_unseen, passed, unseen_rng

_MLM_SECTION = "'Masking' and Exercise 1 in lesson 03"
_CAUSAL_SECTION = "'The other way: next-word prediction (GPT)' in lesson 03"


def _mlm_answer(ids: np.ndarray, selected: np.ndarray, mask_id: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The reference (inputs, labels, weights)."""
    return np.where(selected, mask_id, ids), np.where(selected, ids, 0), selected.astype("float32")


def _mlm_arrays(got: object) -> tuple[np.ndarray, ...] | None:
    """The three returned arrays, or None when the answer is not three things."""
    return tuple(np.asarray(x) for x in got) if isinstance(got, (tuple, list)) and len(got) == 3 else None


def _mlm_matches(got: tuple[np.ndarray, ...] | None, want: tuple[np.ndarray, ...]) -> bool:
    """Whether the three arrays equal the reference ones (weights compared as float32)."""
    return got is not None and all(g.shape == w.shape for g, w in zip(got, want)) and np.array_equal(
        got[0], want[0]) and np.array_equal(got[1], want[1]) and np.array_equal(got[2].astype("float32"), want[2])


@exercise("""
    inputs = np.where(selected, mask_id, token_ids); labels = np.where(selected, token_ids, 0);
    weights = selected.astype("float32"); return inputs, labels, weights
    """, "mlm_targets")
def mlm_targets(fn: Callable[[np.ndarray, np.ndarray, int], tuple]) -> None:
    """Check `fn(token_ids, selected, mask_id)` returns (masked inputs, labels, weights) for masked-LM training."""
    ids = np.array([[2, 7, 8, 9, 3, 0], [2, 5, 6, 3, 0, 0]])
    selected = np.array([[0, 1, 0, 1, 0, 0], [0, 0, 1, 0, 0, 0]], dtype=bool)
    mask_id = 4
    got = _mlm_arrays(call_on_copies(fn, ids, selected, mask_id))  # expectations come from these pristine arrays
    expect(got is not None, "Return three arrays: (inputs, labels, weights).", "(inputs, labels, weights)",
           "something else", "The function returns a tuple of three arrays, in this order.")
    inputs, labels, weights = got
    want_inputs, want_labels, want_weights = _mlm_answer(ids, selected, mask_id)
    expect(inputs.shape == ids.shape and labels.shape == ids.shape and weights.shape == ids.shape,
           "All three arrays have the shape of token_ids.", ids.shape, [inputs.shape, labels.shape, weights.shape],
           "Work position by position: each output has one value per token.")
    expect(np.array_equal(inputs, want_inputs), "Selected positions become the [MASK] id; every other token stays "
           "as it was.", want_inputs.tolist(), inputs.tolist(),
           f"Only the selected positions change: see {_MLM_SECTION}.")
    if np.array_equal(labels * selected, ids * selected):
        hint = ("The unselected positions must be 0: keeping every token gives the model labels it could read "
                "straight from its input.")
    else:
        hint = f"The label at a selected position is the token that was hidden there: see {_MLM_SECTION}."
    expect(np.array_equal(labels, want_labels), "The label at a masked position is the original token, the word "
           "the model must guess; 0 everywhere else.", want_labels.tolist(), labels.tolist(), hint)
    expect(np.array_equal(weights.astype("float32"), want_weights),
           "The loss counts masked positions only: weight 1.0 there, 0.0 elsewhere.", want_weights.tolist(),
           weights.tolist(), "Unmasked tokens are visible in the input, so guessing them teaches nothing.")
    rng = unseen_rng("mlm_targets")
    for shape in [(3, 9), (1, 4)]:
        ids, mask_id = rng.integers(5, 1000, shape), int(rng.integers(100, 200))
        selected = rng.random(shape) < 0.3
        got = _mlm_arrays(call_on_copies(fn, ids, selected, mask_id, shown=False))
        expect_unseen(_mlm_matches(got, _mlm_answer(ids, selected, mask_id)), "other token ids, another selection "
                      "and another mask id: (inputs, labels, weights) are not right.",
                      "Use the arrays and the mask_id you are given, whatever their shape.")
    passed("masked positions hide the token, keep it as the label, and are the only ones the loss counts.")


def _causal_hint(got: np.ndarray, expected: np.ndarray) -> str:
    """Name the mistake a wrong mask matches, or point to the lesson."""
    if np.array_equal(got, expected.T):
        return "That is the transpose: row i is the position that looks, and it may look at the past, not the future."
    if got.size > 1 and got.all():
        return "That lets every position see the future too, as BERT's bidirectional attention does."
    if np.array_equal(got, np.tril(expected, -1)):
        return "The diagonal is missing: a position sees itself as well as the past."
    return f"Row i allows columns 0..i, the diagonal included: see {_CAUSAL_SECTION}."


@exercise("return np.tril(np.ones((length, length), dtype=bool))", "causal_mask")
def causal_mask(fn: Callable[[int], np.ndarray]) -> None:
    """Check `fn(length)` returns the [length, length] mask letting position i see positions 0..i only."""
    for length in (4, 1):
        got = np.asarray(call(fn, length))
        expected = np.tril(np.ones((length, length), dtype=bool))
        expect(got.shape == (length, length), "One row per position (the query), one column per position it may "
               f"look at (length {length}).", (length, length), got.shape, "The mask is square, length by length.")
        got = got.astype(bool)
        expect(np.array_equal(got, expected), "Row i allows columns 0..i: a next-word model must not see the words "
               f"it is predicting (length {length}).", expected.astype(int).tolist(), got.astype(int).tolist(),
               _causal_hint(got, expected))
    for length in sorted(unseen_rng("causal_mask").choice(np.arange(2, 40), 3, replace=False).tolist()):
        got = np.asarray(call_on_copies(fn, int(length), shown=False))
        expected = np.tril(np.ones((length, length), dtype=bool))
        ok = got.shape == expected.shape and np.array_equal(got.astype(bool), expected)
        expect_unseen(ok, "for another length, the mask is not the lower triangle of a square, diagonal included.",
                      "Build the mask from the length you are given." if got.shape != expected.shape
                      else _causal_hint(got.astype(bool), expected))
    passed("each position sees itself and the past, never the future.")
