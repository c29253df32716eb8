"""Lesson 01 (word embeddings): nearest neighbours by cosine similarity, Embedding Projector files."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Callable

import numpy as np

from kitlib.checks.core import CheckFailed, call, call_on_copies, exercise, expect, expect_unseen, passed, unseen_rng

# A tiny embedding table with a known geometry. "superb" points exactly where "good" points but is three times
# longer, so cosine similarity ranks it first while Euclidean distance prefers "great". "dreadful" is five times
# longer than the others and only roughly in the direction of "bad": a raw dot product ranks it above "awful".
_WORDS = ["", "[UNK]", "good", "great", "bad", "awful", "plot", "superb", "dreadful"]
_VECTORS = np.array([[0, 0, 0], [0.1, 0.1, 0.1], [1, 0.1, 0], [0.9, 0.3, 0], [-1, 0, 0.1], [-0.8, 0, 0.3],
                     [0, 1, 0], [3, 0.3, 0], [-4, 3, 0]], dtype=np.float32)
_SECTION = "'Looking inside the embedding space' and Exercise 1 in lesson 01"


def _ranked(words: list[str], word: str, scores: np.ndarray, k: int) -> list[str]:
    """The k words of highest score except `word` itself."""
    index = words.index(word)
    return [words[i] for i in np.argsort(-scores, kind="stable") if i != index][:k]


def _rankings(words: list[str], vectors: np.ndarray, word: str, k: int) -> dict[str, list[str]]:
    """The right ranking ("cosine") and the known wrong ones, by the name of the mistake."""
    query = vectors[words.index(word)]
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    cosine = unit @ unit[words.index(word)]
    return {"cosine": _ranked(words, word, cosine, k),
            "dot": _ranked(words, word, vectors @ query, k),
            "euclid": _ranked(words, word, -np.linalg.norm(vectors - query, axis=1), k),
            "reversed": _ranked(words, word, -cosine, k)}


_MISTAKES = {
    "dot": "That is the ranking of the raw dot product, which favours long vectors: cosine similarity compares "
           "directions only, whatever the vectors' lengths.",
    "euclid": "That is the ranking by Euclidean distance, which also depends on the vectors' lengths: compare "
              "directions, not distances.",
    "reversed": "That is the least similar first: the most similar word comes first.",
}


def _as_words(got: object) -> list[str] | None:
    """The answer as a list of strings, or None when it is not a sequence of words."""
    return [str(w) for w in got] if isinstance(got, (list, tuple, np.ndarray)) else None


def _random_table(rng: np.random.Generator) -> tuple[list[str], np.ndarray]:
    """A vocabulary of 14 words (padding first) and vectors of very different lengths, none in the same direction."""
    vectors = rng.normal(size=(14, 5)) * rng.uniform(0.2, 6.0, size=(14, 1))
    vectors[0] = 0.0
    return [""] + [f"w{i}" for i in range(1, 14)], vectors.astype(np.float32)


@exercise("""
    Normalise every row to unit length (divide by np.linalg.norm(vectors, axis=1, keepdims=True), guarding against
    0), take the dot product of every unit row with the query's unit row, then
    order = [i for i in np.argsort(-similarity) if i != index] and return [vocabulary[i] for i in order[:k]].
    """, "nearest_neighbours")
def nearest_neighbours(fn: Callable[[str, np.ndarray, list[str], int], list[str]]) -> None:
    """Check `fn(word, vectors, vocabulary, k)` returns the k most cosine-similar other words."""
    for word, k in [("good", 3), ("bad", 2)]:
        ranks = _rankings(_WORDS, _VECTORS, word, k)
        want = ranks["cosine"]
        got = _as_words(call_on_copies(fn, word, _VECTORS, _WORDS, k))
        expect(got is not None, "nearest_neighbours should return a list of words.", want, type(got).__name__,
               "Return the words themselves, taken from `vocabulary`.")
        expect(word not in got, "A word is not its own neighbour.", f"no {word!r} in the answer", got,
               "Its cosine similarity with itself is 1, the highest: leave its own index out.")
        expect(len(got) == k, f"It should return exactly k = {k} words.", k, len(got),
               "Keep only the first k of the ranking; use the k you are given.")
        mistake = next((name for name, ranking in ranks.items() if name != "cosine" and ranking == got), None)
        hint = _MISTAKES[mistake] if mistake else f"Rank by cosine similarity, most similar first: see {_SECTION}."
        expect(got == want, f"The {k} words most cosine-similar to {word!r} in the test table, most similar first "
               "('superb' points exactly where 'good' does; 'dreadful' is long but points elsewhere).", want, got, hint)
    rng = unseen_rng("nearest_neighbours")
    for _ in range(3):
        words, vectors = _random_table(rng)
        word, k = words[int(rng.integers(1, len(words)))], int(rng.integers(1, 7))
        ranks = _rankings(words, vectors, word, k)
        got = _as_words(call_on_copies(fn, word, vectors, words, k, shown=False))
        expect_unseen(got is not None and len(got) == k, "another table and another k: the answer should be "
                      "a list of exactly k words.", "Use the k, vectors and vocabulary you are given.")
        mistake = next((name for name, ranking in ranks.items() if name != "cosine" and ranking == got), None)
        expect_unseen(got == ranks["cosine"], "on another table, the words are not the k most cosine-similar, most "
                      "similar first.", _MISTAKES[mistake] if mistake else f"See {_SECTION}.")
    passed("neighbours are sorted by cosine similarity, whatever the vectors' lengths, and exclude the word itself.")


def _write(fn: Callable, folder: Path, vectors: np.ndarray, words: list[str], run: str) -> None:
    """Call the learner's export into `folder`; a missing or existing folder becomes a message naming the run."""
    parent_was_there = folder.parent.exists()
    try:
        call(fn, folder, vectors.copy(), list(words))
    except CheckFailed as failure:
        cause = failure.__cause__
        if isinstance(cause, FileNotFoundError) and not folder.exists():
            where = ("and so does the folder above it: the lesson's folder is nested two levels deep, and so is "
                     "the check's" if not parent_was_there else "")
            raise CheckFailed(f"{failure}\n  The folder does not exist yet on the lesson's {run} run, {where}. "
                              "Create it, with every missing folder above it, before writing (see the options of "
                              "pathlib's Path.mkdir).") from cause
        if isinstance(cause, FileExistsError):
            raise CheckFailed(f"{failure}\n  On the lesson's {run} run the folder is already there (the lesson "
                              "was run before): creating it must not fail when it exists (see the options of "
                              "pathlib's Path.mkdir).") from cause
        raise


def _read(folder: Path) -> tuple[list[str], list[str]]:
    """The lines of vectors.tsv and metadata.tsv in `folder`; fail naming the file that is missing."""
    written = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else "no folder"
    for name in ("vectors.tsv", "metadata.tsv"):
        expect((folder / name).exists(), f"{name} should be written into the folder (create it if needed).",
               name, written, "Write both files inside `folder`, under exactly these names.")
    return ((folder / "vectors.tsv").read_text(encoding="utf-8").splitlines(),
            (folder / "metadata.tsv").read_text(encoding="utf-8").splitlines())


def _numbers(line: str) -> list[float] | None:
    """The tab-separated numbers of a vectors.tsv line, or None when a cell is not a number."""
    try:
        return [float(x) for x in line.split("\t")]
    except ValueError:
        return None


def _files_match(vectors_lines: list[str], words: list[str], table: np.ndarray, vocabulary: list[str]) -> bool:
    """Whether the two files hold `vocabulary` and `table` without the padding row, line by line."""
    return words == vocabulary[1:] and len(vectors_lines) == len(table) - 1 and all(
        (numbers := _numbers(line)) is not None and len(numbers) == len(want) and np.allclose(numbers, want)
        for line, want in zip(vectors_lines, table[1:]))


@exercise("""
    folder.mkdir(parents=True, exist_ok=True) creates the folder and any missing folder above it, and does nothing
    when it exists. Then open both files with "w" (not "a": a second run must not append), loop over
    enumerate(vocabulary), skip index 0, and write "\\t".join(str(x) for x in vectors[index]) + "\\n" to
    vectors.tsv and word + "\\n" to metadata.tsv.
    """, "write_projector_files")
def projector_export(fn: Callable[[Path, np.ndarray, list[str]], None]) -> None:
    """Check `fn(folder, vectors, vocabulary)` creates `folder` with vectors.tsv and metadata.tsv for the Projector."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "exports" / "projector"  # two levels that do not exist yet, as on the lesson's first run
        _write(fn, folder, _VECTORS, _WORDS, "first")
        vectors, words = _read(folder)
        expected_words = _WORDS[1:]
        hint = ("Single-column metadata has no header line: the file holds only the words." if words[1:] ==
                expected_words else "The padding token (index 0) has no meaning: leave it out of both files, "
                "and keep the vocabulary's order.")
        expect(words == expected_words, "metadata.tsv holds one word per line, without the padding token.",
               expected_words, words, hint)
        expect(len(vectors) == len(words), "vectors.tsv needs one line per word in metadata.tsv.",
               len(words), len(vectors), "Leave the padding row out of both files.")
        for line, want in zip(vectors, _VECTORS[1:]):
            numbers = _numbers(line)
            expect(numbers is not None and len(numbers) == len(want), "Each line of vectors.tsv is that word's "
                   "vector, one number per column, tab-separated.", "\t".join(str(x) for x in want.tolist()), line,
                   "TSV means tab-separated values: no brackets, commas or spaces, a tab between numbers.")
            expect(np.allclose(numbers, want), "Each line of vectors.tsv is the vector of the word on the same "
                   "line of metadata.tsv.", want.tolist(), line, "Write the vector and the word of the same index.")
        _write(fn, folder, _VECTORS, _WORDS, "second")
        vectors, words = _read(folder)
        expect(_files_match(vectors, words, _VECTORS, _WORDS), "Running the lesson again rewrites both files: "
               "they hold the same lines as after the first run.", f"{len(_WORDS) - 1} lines in each file",
               f"{len(vectors)} and {len(words)} lines", "Open the files for writing, which replaces them, not "
               "for appending.")
        words, table = _random_table(unseen_rng("projector_export"))
        words = [""] + [f"word_{w}" for w in words[1:]]
        other = Path(tmp) / "other" / "run"
        _write(fn, other, table, words, "first")
        vectors, written = _read(other)
        expect_unseen(_files_match(vectors, written, table, words), "another vocabulary and vectors of another "
                      "width, into another folder: the files do not hold them, line by line, without the padding.",
                      "Write what you are given, into the folder you are given.")
    passed("both TSV files line up and load in projector.tensorflow.org, on the first run and the next.")
