"""Lesson 01 (word embeddings): nearest neighbours by cosine similarity, Embedding Projector files."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Callable

import numpy as np

from kitlib.checks.core import CheckFailed, call, call_on_copies, expect, passed

# A tiny embedding table with a known geometry. "superb" points exactly where "good" points but is three times
# longer, so cosine similarity ranks it first while Euclidean distance prefers "great". "dreadful" is five times
# longer than the others and only roughly in the direction of "bad": a raw dot product ranks it above "awful".
_WORDS = ["", "[UNK]", "good", "great", "bad", "awful", "plot", "superb", "dreadful"]
_VECTORS = np.array([[0, 0, 0], [0.1, 0.1, 0.1], [1, 0.1, 0], [0.9, 0.3, 0], [-1, 0, 0.1], [-0.8, 0, 0.3],
                     [0, 1, 0], [3, 0.3, 0], [-4, 3, 0]], dtype=np.float32)


def _ranked(word: str, scores: np.ndarray, k: int) -> list[str]:
    """The k words of highest score except `word` itself."""
    index = _WORDS.index(word)
    return [_WORDS[i] for i in np.argsort(-scores, kind="stable") if i != index][:k]


def _mistake_hint(word: str, k: int) -> str:
    """Name the similarity a wrong ranking used, when it matches a known one."""
    query = _VECTORS[_WORDS.index(word)]
    unit = _VECTORS / np.maximum(np.linalg.norm(_VECTORS, axis=1, keepdims=True), 1e-12)
    return {
        tuple(_ranked(word, _VECTORS @ query, k)): "That is the ranking of the raw dot product, which favours long "
        "vectors ('dreadful' is 5 times longer than 'awful'): normalise every row to unit length first.",
        tuple(_ranked(word, -np.linalg.norm(_VECTORS - query, axis=1), k)): "That is the ranking by Euclidean "
        "distance. Compare directions, not distances: normalise the vectors to unit length, take dot products "
        "with the query, sort descending.",
        tuple(_ranked(word, -(unit @ unit[_WORDS.index(word)]), k)): "That is the least similar first: sort by "
        "similarity, highest first.",
    }


def nearest_neighbours(fn: Callable[[str, np.ndarray, list[str], int], list[str]]) -> None:
    """Check `fn(word, vectors, vocabulary, k)` returns the k most cosine-similar other words."""
    for word, k, want in [("good", 2, ["superb", "great"]), ("bad", 2, ["awful", "dreadful"])]:
        got = call_on_copies(fn, word, _VECTORS, _WORDS, k)
        expect(isinstance(got, (list, tuple, np.ndarray)), "nearest_neighbours should return a list of words.",
               want, type(got).__name__, "Return `[vocabulary[i] for i in order[:k]]`.")
        got = [str(w) for w in got]
        expect(word not in got, "A word is not its own neighbour.", f"no {word!r} in the answer", got,
               "Skip the query word's own index (its cosine similarity with itself is 1).")
        expect(len(got) == k, f"It should return exactly k = {k} words.", k, len(got),
               "Slice the sorted order with [:k].")
        hint = _mistake_hint(word, k).get(tuple(got), "Normalise the rows to unit length, take dot products with the "
                                                       "query's unit vector, sort descending, skip the word itself.")
        expect(got == want, f"The {k} words most cosine-similar to {word!r} in the test table, most similar first "
               "('superb' points exactly where 'good' does; 'dreadful' is long but points elsewhere).", want, got, hint)
    passed("neighbours are sorted by cosine similarity, whatever the vectors' lengths, and exclude the word itself.")


def projector_export(fn: Callable[[Path, np.ndarray, list[str]], None]) -> None:
    """Check `fn(folder, vectors, vocabulary)` creates `folder` with vectors.tsv and metadata.tsv for the Projector."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "projector"  # not there yet, as on the lesson's first run
        try:
            call(fn, folder, _VECTORS.copy(), list(_WORDS))
        except CheckFailed as failure:
            if folder.exists() or not isinstance(failure.__cause__, FileNotFoundError):
                raise
            raise CheckFailed(f"{failure}\n  The folder does not exist yet (as on the lesson's first run): create it "
                              "with folder.mkdir(parents=True, exist_ok=True) before writing.") from failure.__cause__
        written = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else "no folder"
        for name in ("vectors.tsv", "metadata.tsv"):
            expect((folder / name).exists(), f"{name} should be written into the folder (create it if needed).",
                   name, written, "folder.mkdir(parents=True, exist_ok=True), then open(folder / name, 'w').")
        vectors = (folder / "vectors.tsv").read_text(encoding="utf-8").splitlines()
        words = (folder / "metadata.tsv").read_text(encoding="utf-8").splitlines()
    expected_words = _WORDS[1:]
    hint = ("Single-column metadata has no header line: write only the words." if words[1:] == expected_words else
            "Skip index 0 (the empty padding token) and write one word per line, in vocabulary order.")
    expect(words == expected_words, "metadata.tsv holds one word per line, without the padding token.",
           expected_words, words, hint)
    expect(len(vectors) == len(words), "vectors.tsv needs one line per word in metadata.tsv.",
           len(words), len(vectors), "Skip the padding row in both files.")
    for line, want in zip(vectors, _VECTORS[1:]):
        cells = line.split("\t")
        expect(len(cells) == len(want), "Each line of vectors.tsv is that word's vector, one number per column, "
               "tab-separated.", "\t".join(str(x) for x in want.tolist()), line,
               "Use '\\t'.join(str(x) for x in vector): no brackets, commas or spaces.")
        try:
            numbers = [float(x) for x in cells]
        except ValueError:
            numbers = None
        expect(numbers is not None and np.allclose(numbers, want), "Each line of vectors.tsv is the vector of the "
               "word on the same line of metadata.tsv.", want.tolist(), line,
               "Write vectors[i] and vocabulary[i] for the same i, skipping i = 0 in both.")
    passed("both TSV files line up and load in projector.tensorflow.org.")
