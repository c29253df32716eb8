"""Exercise checks: each runs the learner's code on a case with a known answer and says what to fix."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np


class CheckFailed(AssertionError):
    """An exercise check did not pass; the message says what was expected and how to fix it."""


def expect(ok: bool, what: str, expected: Any, received: Any, hint: str) -> None:
    """Raise CheckFailed with expected, received and a hint unless `ok`."""
    if not ok:
        raise CheckFailed(f"{what}\n  expected: {expected}\n  received: {received}\n  hint: {hint}")


def _call(fn: Callable, *args: Any, **kwargs: Any) -> Any:
    """Call the learner's function, turning the unwritten stub into a friendly message."""
    try:
        return fn(*args, **kwargs)
    except NotImplementedError:
        raise CheckFailed(
            f"`{fn.__name__}` is not written yet: replace `raise NotImplementedError()` with your code, "
            "run that cell, then run this check again."
        ) from None


def build(fn: Callable, *args: Any, **kwargs: Any) -> Any:
    """Call the learner's builder (e.g. `build_lstm_model`) for a check, explaining an unwritten stub."""
    return _call(fn, *args, **kwargs)


def passed(message: str) -> None:
    """Tell the learner the check passed."""
    print(f"Check passed: {message}")


# A tiny embedding table with a known geometry. "superb" points exactly where "good" points but is
# three times longer, so cosine similarity ranks it first while Euclidean distance prefers "great".
_WORDS = ["", "[UNK]", "good", "great", "bad", "awful", "plot", "superb"]
_VECTORS = np.array(
    [[0, 0, 0], [0.1, 0.1, 0.1], [1, 0.1, 0], [0.9, 0.3, 0], [-1, 0, 0.1], [-0.8, 0, 0.3], [0, 1, 0], [3, 0.3, 0]],
    dtype=np.float32,
)


def nearest_neighbours(fn: Callable[[str, np.ndarray, list[str], int], list[str]]) -> None:
    """Check `fn(word, vectors, vocabulary, k)` returns the k most cosine-similar other words."""
    got = _call(fn, "good", _VECTORS, _WORDS, 2)
    expect(isinstance(got, (list, tuple)), "nearest_neighbours should return a list of words.",
           "a list such as ['great', ...]", type(got).__name__, "Return `[vocabulary[i] for i in order[:k]]`.")
    got = list(got)
    expect(len(got) == 2, "It should return exactly k words.", 2, len(got), "Slice the sorted order with [:k].")
    expect("good" not in got, "A word is not its own neighbour.", "no 'good' in the answer", got,
           "Skip the query word's own index (its cosine similarity with itself is 1).")
    expect(got == ["superb", "great"],
           "In the test table 'superb' points the same way as 'good' (cosine 1) and 'great' almost so.",
           ["superb", "great"], got,
           "Compare directions, not distances: normalise the vectors to unit length, take dot products "
           "with the query, sort descending.")
    got = list(_call(fn, "bad", _VECTORS, _WORDS, 1))
    expect(got == ["awful"], "The closest word to 'bad' is 'awful'.", ["awful"], got,
           "Sort by similarity, highest first.")
    passed("neighbours are sorted by cosine similarity and exclude the word itself.")


def projector_export(fn: Callable[[Path, np.ndarray, list[str]], None]) -> None:
    """Check `fn(folder, vectors, vocabulary)` writes vectors.tsv and metadata.tsv for the Projector."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        _call(fn, folder, _VECTORS, _WORDS)
        for name in ("vectors.tsv", "metadata.tsv"):
            expect((folder / name).exists(), f"{name} should be written into the folder.", name,
                   sorted(p.name for p in folder.iterdir()), "Write both files with `open(folder / name, 'w')`.")
        vectors = (folder / "vectors.tsv").read_text(encoding="utf-8").splitlines()
        words = (folder / "metadata.tsv").read_text(encoding="utf-8").splitlines()
    expected_words = _WORDS[1:]
    expect(words == expected_words, "metadata.tsv holds one word per line, without the padding token.",
           expected_words, words, "Skip index 0 (the empty padding token); single-column metadata has no header.")
    expect(len(vectors) == len(words), "vectors.tsv needs one line per word in metadata.tsv.",
           len(words), len(vectors), "Skip the padding row in both files.")
    first = [float(x) for x in vectors[0].split("\t")]
    expect(np.allclose(first, _VECTORS[1]), "Each line of vectors.tsv is that word's vector, tab-separated.",
           _VECTORS[1].tolist(), vectors[0], "Use '\\t'.join(str(x) for x in vector).")
    passed("both TSV files line up and load in projector.tensorflow.org.")


def lstm_model(model: Any, sample_texts: list[str]) -> None:
    """Check a text model: masking Embedding, a Bidirectional LSTM, one sigmoid probability per text."""
    import keras
    import tensorflow as tf

    layers = list(model.layers)
    embeddings = [layer for layer in layers if isinstance(layer, keras.layers.Embedding)]
    expect(bool(embeddings), "The model needs an Embedding layer.", "keras.layers.Embedding",
           [type(layer).__name__ for layer in layers], "Put an Embedding after the TextVectorization layer.")
    expect(embeddings[0].mask_zero, "The Embedding should mask padding so the LSTM skips it.", "mask_zero=True",
           f"mask_zero={embeddings[0].mask_zero}", "Pass mask_zero=True to keras.layers.Embedding.")
    bidirectional = [layer for layer in layers if isinstance(layer, keras.layers.Bidirectional)]
    expect(bool(bidirectional) and isinstance(bidirectional[0].forward_layer, keras.layers.LSTM),
           "The model needs a bidirectional LSTM.", "keras.layers.Bidirectional(keras.layers.LSTM(units))",
           [type(layer).__name__ for layer in layers], "Wrap an LSTM layer in keras.layers.Bidirectional.")
    head = getattr(layers[-1], "activation", None)
    expect(head is keras.activations.sigmoid, "The last layer should turn a score into a probability.",
           "Dense(1, activation='sigmoid')", f"{type(layers[-1]).__name__} with activation {getattr(head, '__name__', None)}",
           "End with keras.layers.Dense(1, activation='sigmoid').")
    probs = np.asarray(model(tf.constant(sample_texts)))
    expect(probs.shape == (len(sample_texts), 1), "One output per review.", (len(sample_texts), 1), probs.shape,
           "End with keras.layers.Dense(1, activation='sigmoid').")
    expect(bool(np.all((probs >= 0) & (probs <= 1))), "Outputs should be probabilities in [0, 1].",
           "values in [0, 1]", probs.ravel()[:4], "Use activation='sigmoid' on the last Dense layer.")
    passed("raw strings in, one probability out, with padding masked.")


def most_confident_mistakes(fn: Callable[[np.ndarray, np.ndarray, int], np.ndarray]) -> None:
    """Check `fn(y_true, probs, k)` returns the indices of the k most confidently wrong predictions."""
    y_true = np.array([1, 0, 1, 0, 1, 0])
    probs = np.array([0.9, 0.6, 0.2, 0.95, 0.45, 0.1])  # wrong: 1 (0.6), 2 (0.2), 3 (0.95), 4 (0.45)
    got = _call(fn, y_true, probs, 3)
    got = [int(i) for i in np.asarray(got).ravel()]
    expect(got == [3, 2, 1], "The three most confident mistakes, most confident first.", [3, 2, 1], got,
           "A mistake's confidence is |prob - 0.5| where (prob > 0.5) != label; sort those descending.")
    got = [int(i) for i in np.asarray(_call(fn, y_true, probs, 10)).ravel()]
    expect(got == [3, 2, 1, 4], "With k larger than the number of mistakes, return every mistake.",
           [3, 2, 1, 4], got, "Select the wrong predictions before slicing [:k]; never pad with correct ones.")
    passed("mistakes ranked by how sure the model was.")
