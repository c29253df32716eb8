"""Lesson 02 (LSTM baseline): the masked bidirectional LSTM model, the most confident mistakes."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from kitlib.checks.core import call, call_on_copies, exercise, expect, expect_unseen, passed, unseen_rng

_MODEL_SECTION = "'Why order matters' and Exercise 1 in lesson 02"
_MISTAKES_SECTION = "'Beyond accuracy' and Exercise 2 in lesson 02"


def _lstms(model: Any) -> tuple[list, list]:
    """The model's Embedding layers and its Bidirectional layers."""
    import keras

    layers = list(model.layers)
    return ([layer for layer in layers if isinstance(layer, keras.layers.Embedding)],
            [layer for layer in layers if isinstance(layer, keras.layers.Bidirectional)])


def _uses_its_sizes(build: Callable, vectorizer: Any) -> None:
    """Build the model with sizes other than the lesson's; fail unless the layers have exactly those sizes."""
    vocab = int(vectorizer.vocabulary_size())
    for vocab_size, embed_dim, units in [(vocab, 5, 3), (vocab + 11, 7, 2)]:
        model = call(build, vectorizer, vocab_size, embed_dim, units)
        embeddings, bidirectional = _lstms(model)
        got = (embeddings[0].input_dim if embeddings else None, embeddings[0].output_dim if embeddings else None,
               bidirectional[0].forward_layer.units if bidirectional else None)
        expect_unseen(got == (vocab_size, embed_dim, units), "a model built with other sizes does not have them: "
                      "the Embedding's vocabulary and width, or the LSTM's units, stay fixed.",
                      "Build every layer from the arguments build_lstm_model receives, not from the lesson's knobs.")


@exercise("""
    keras.Sequential([keras.Input(shape=(), dtype="string"), vectorizer,
                      keras.layers.Embedding(vocab_size, embed_dim, mask_zero=True),
                      keras.layers.Bidirectional(keras.layers.LSTM(units)),   # return_sequences left False
                      keras.layers.Dropout(0.3),
                      keras.layers.Dense(1, activation="sigmoid")])
    """, "build_lstm_model")
def lstm_model(model: Any, sample_texts: list[str], build: Callable | None = None, vectorizer: Any = None) -> None:
    """Check a text model: masking Embedding, a Bidirectional LSTM, one sigmoid probability per text.

    Given the lesson's `build` function and its `vectorizer`, also check that the model takes the sizes it is given.
    """
    import keras
    import tensorflow as tf

    layers = list(model.layers)
    names = [type(layer).__name__ for layer in layers]
    embeddings, bidirectional = _lstms(model)
    expect(bool(embeddings), "The model needs an Embedding layer.", "an Embedding layer", names,
           "Token ids become vectors in an Embedding, right after the TextVectorization layer.")
    expect(embeddings[0].mask_zero, "The Embedding should mask padding so the LSTM skips it.", "mask_zero=True",
           f"mask_zero={embeddings[0].mask_zero}", f"Padding is id 0: see how masking works in {_MODEL_SECTION}.")
    expect(bool(bidirectional) and isinstance(bidirectional[0].forward_layer, keras.layers.LSTM),
           "The model needs a bidirectional LSTM.", "an LSTM wrapped in Bidirectional", names,
           f"A plain LSTM reads only left to right: see {_MODEL_SECTION}.")
    expect(not bidirectional[0].forward_layer.return_sequences, "The LSTM returns its whole sequence "
           "(return_sequences=True), so the layers after it score every word instead of the whole review.",
           "return_sequences=False (the default): one state per review", "return_sequences=True",
           "A classifier needs the LSTM's final state only; a sequence of states is for stacking another "
           "recurrent layer on top.")
    head = getattr(layers[-1], "activation", None)
    expect(head is keras.activations.sigmoid, "The last layer should turn a score into a probability.",
           "a probability in [0, 1] from the last layer", f"{names[-1]} with activation "
           f"{getattr(head, '__name__', None)}", "Which activation squashes any score into (0, 1)? The exercise's "
           "prompt names it.")
    probs = np.asarray(model.predict(tf.constant(sample_texts), verbose=0))  # compiled, as fit and evaluate run it
    expect(probs.shape == (len(sample_texts), 1), "One output per review.", (len(sample_texts), 1), probs.shape,
           "The last layer has one unit: the score of one class, the other being 1 minus it.")
    expect(bool(np.all((probs >= 0) & (probs <= 1))), "Outputs should be probabilities in [0, 1].",
           "values in [0, 1]", probs.ravel()[:4], "Look at the last layer's activation.")
    if build is not None:
        _uses_its_sizes(build, vectorizer)
    passed("raw strings in, one probability out, with padding masked" + (", at any size." if build else "."))


def _confident_mistakes(y_true: np.ndarray, probs: np.ndarray, k: int) -> list[int]:
    """The reference answer: wrong predictions by decreasing |prob - 0.5|, at most k."""
    wrong = np.flatnonzero((probs > 0.5).astype(int) != y_true)
    return [int(i) for i in wrong[np.argsort(-np.abs(probs[wrong] - 0.5), kind="stable")][:k]]


def _mistake(got: list[int], y_true: np.ndarray, probs: np.ndarray, k: int) -> str:
    """A hint naming the mistake `got` matches, or a pointer to the lesson."""
    wrong = np.flatnonzero((probs > 0.5).astype(int) != y_true)
    want = _confident_mistakes(y_true, probs, k)
    if got == [int(np.flatnonzero(wrong == i)[0]) for i in want]:
        return ("These are positions within the list of mistakes, not indices into y_true: map them back to the "
                "examples they stand for.")
    if got == [int(i) for i in wrong[np.argsort(-probs[wrong], kind="stable")][:k]]:
        return ("That ranks by the probability itself. Confidence is the distance from 0.5: a 0.2 for a positive "
                "review is a surer mistake than a 0.6 for a negative one.")
    if any(0 <= i < len(y_true) and i not in wrong for i in got):
        return "Some of these were predicted right: select the mistakes first and never pad with correct ones."
    return f"A mistake's confidence is its distance from 0.5: see {_MISTAKES_SECTION}."


@exercise("""
    wrong = np.flatnonzero((probs > 0.5).astype(int) != y_true); confidence = np.abs(probs[wrong] - 0.5);
    return wrong[np.argsort(-confidence)][:k]
    """, "most_confident_mistakes")
def most_confident_mistakes(fn: Callable[[np.ndarray, np.ndarray, int], np.ndarray]) -> None:
    """Check `fn(y_true, probs, k)` returns the indices of the k most confidently wrong predictions."""
    y_true = np.array([1, 0, 1, 0, 1, 0])
    probs = np.array([0.9, 0.6, 0.2, 0.95, 0.45, 0.1])  # wrong: 1 (0.6), 2 (0.2), 3 (0.95), 4 (0.45)
    for k in (3, 10):
        want = _confident_mistakes(y_true, probs, k)
        got = [int(i) for i in np.asarray(call_on_copies(fn, y_true, probs, k)).ravel()]
        what = ("The three most confident mistakes, most confident first." if k == 3 else
                "With k larger than the number of mistakes, return every mistake (and nothing else).")
        expect(got == want, what, want, got, _mistake(got, y_true, probs, k))
    rng = unseen_rng("most_confident_mistakes")
    for size, k, classes in [(25, int(rng.integers(2, 6)), 2), (12, 1, 2), (9, 20, 1)]:  # 1: only positives
        y_true = 1 - rng.integers(0, classes, size)
        probs = rng.uniform(0.0, 1.0, size)
        got = [int(i) for i in np.asarray(call_on_copies(fn, y_true, probs, k, shown=False)).ravel()]
        expect_unseen(got == _confident_mistakes(y_true, probs, k), "on other labels, probabilities and k, these "
                      "are not the k most confident mistakes, most confident first.", _mistake(got, y_true, probs, k))
    passed("mistakes ranked by how sure the model was.")
