"""Lesson 02 (LSTM baseline): the masked bidirectional LSTM model, the most confident mistakes."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from kitlib.checks.core import call_on_copies, expect, passed


def lstm_model(model: Any, sample_texts: list[str]) -> None:
    """Check a text model: masking Embedding, a Bidirectional LSTM, one sigmoid probability per text."""
    import keras
    import tensorflow as tf

    layers = list(model.layers)
    names = [type(layer).__name__ for layer in layers]
    embeddings = [layer for layer in layers if isinstance(layer, keras.layers.Embedding)]
    expect(bool(embeddings), "The model needs an Embedding layer.", "keras.layers.Embedding", names,
           "Put an Embedding after the TextVectorization layer.")
    expect(embeddings[0].mask_zero, "The Embedding should mask padding so the LSTM skips it.", "mask_zero=True",
           f"mask_zero={embeddings[0].mask_zero}", "Pass mask_zero=True to keras.layers.Embedding.")
    bidirectional = [layer for layer in layers if isinstance(layer, keras.layers.Bidirectional)]
    expect(bool(bidirectional) and isinstance(bidirectional[0].forward_layer, keras.layers.LSTM),
           "The model needs a bidirectional LSTM.", "keras.layers.Bidirectional(keras.layers.LSTM(units))", names,
           "Wrap an LSTM layer in keras.layers.Bidirectional (a plain LSTM reads only left to right).")
    head = getattr(layers[-1], "activation", None)
    expect(head is keras.activations.sigmoid, "The last layer should turn a score into a probability.",
           "Dense(1, activation='sigmoid')", f"{names[-1]} with activation {getattr(head, '__name__', None)}",
           "End with keras.layers.Dense(1, activation='sigmoid').")
    probs = np.asarray(model.predict(tf.constant(sample_texts), verbose=0))  # compiled, as fit and evaluate run it
    expect(probs.shape == (len(sample_texts), 1), "One output per review.", (len(sample_texts), 1), probs.shape,
           "End with keras.layers.Dense(1, activation='sigmoid').")
    expect(bool(np.all((probs >= 0) & (probs <= 1))), "Outputs should be probabilities in [0, 1].",
           "values in [0, 1]", probs.ravel()[:4], "Use activation='sigmoid' on the last Dense layer.")
    passed("raw strings in, one probability out, with padding masked.")


def most_confident_mistakes(fn: Callable[[np.ndarray, np.ndarray, int], np.ndarray]) -> None:
    """Check `fn(y_true, probs, k)` returns the indices of the k most confidently wrong predictions."""
    y_true = np.array([1, 0, 1, 0, 1, 0])
    probs = np.array([0.9, 0.6, 0.2, 0.95, 0.45, 0.1])  # wrong: 1 (0.6), 2 (0.2), 3 (0.95), 4 (0.45)
    wrong = [1, 2, 3, 4]
    for k, want in [(3, [3, 2, 1]), (10, [3, 2, 1, 4])]:
        got = [int(i) for i in np.asarray(call_on_copies(fn, y_true, probs, k)).ravel()]
        if got == [wrong.index(i) for i in want]:
            hint = ("These are positions within the list of mistakes, not indices into y_true: map them back, "
                    "e.g. wrong[order] where wrong = np.flatnonzero(predictions != y_true).")
        elif got == [3, 1, 4, 2][:k]:
            hint = ("That ranks by the probability itself. Confidence is the distance from 0.5: a 0.2 for a "
                    "positive review is a surer mistake than a 0.6 for a negative one. Sort by |prob - 0.5|.")
        elif len(got) > len(wrong):
            hint = "Select the wrong predictions before slicing [:k]; never pad with correct ones."
        else:
            hint = "A mistake's confidence is |prob - 0.5| where (prob > 0.5) != label; sort those descending."
        what = ("The three most confident mistakes, most confident first." if k == 3 else
                "With k larger than the number of mistakes, return every mistake (and nothing else).")
        expect(got == want, what, want, got, hint)
    passed("mistakes ranked by how sure the model was.")
