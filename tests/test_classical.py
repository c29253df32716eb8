"""The classical text baseline: it learns, it chooses on validation, it refuses malformed input."""

from __future__ import annotations

import numpy as np
import pytest

from kitlib.models.classical import classical_baseline

FILLER = "the a movie film plot actor scene story was it and".split()


def _reviews(rng: np.random.Generator, n: int, words: dict[int, list[str]]) -> tuple[list[str], np.ndarray]:
    """n reviews: filler words around one or two words that give the label away."""
    labels = rng.integers(0, 2, n)
    texts = [" ".join([*rng.choice(FILLER, 6), *rng.choice(words[label], 2), *rng.choice(FILLER, 6)])
             for label in labels]
    return texts, labels


def test_it_learns_a_separable_set_and_predicts_probabilities_of_raw_strings() -> None:
    rng = np.random.default_rng(0)
    words = {0: ["awful", "terrible", "boring"], 1: ["great", "wonderful", "moving"]}
    model = classical_baseline(_reviews(rng, 200, words), _reviews(rng, 60, words))
    texts, labels = _reviews(rng, 100, words)
    probabilities = model.predict_proba(texts)
    assert probabilities.shape == (100, 2)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)
    assert np.mean(model.predict(texts) == labels) == 1.0
    assert model.predict_proba(["a wonderful moving film"])[0, 1] > 0.5
    assert model.predict_proba(["an awful boring film"])[0, 1] < 0.5
    assert "logistic regression" in model.describe()


def test_the_choice_is_the_best_on_validation() -> None:
    """Word order decides the label: unigrams cannot tell 'good not' from 'not good'; bigrams can."""
    rng = np.random.default_rng(1)

    def ordered(n: int) -> tuple[list[str], np.ndarray]:
        labels = rng.integers(0, 2, n)
        return [" ".join([*rng.choice(FILLER, 4), *(("not", "good") if y == 0 else ("good", "not")),
                          *rng.choice(FILLER, 4)]) for y in labels], labels

    model = classical_baseline(ordered(200), ordered(80))
    assert model.ngram_range == (1, 2)
    assert model.val_accuracy == 1.0
    unigram_rows = [row for row in model.grid if row["ngram_range"] == (1, 1)]
    assert max(row["val_accuracy"] for row in unigram_rows) < 0.8
    assert len(model.grid) == 8 and all(row["n_val"] == 80 for row in model.grid)
    best = max(model.grid, key=lambda row: (row["val_accuracy"], -row["val_log_loss"]))
    assert (best["ngram_range"], best["C"]) == (model.ngram_range, model.C)


def test_malformed_input_gets_a_clear_error() -> None:
    texts, labels = ["good film", "bad film"], np.array([1, 0])
    with pytest.raises(TypeError, match="one string"):
        classical_baseline(("good film", labels), (texts, labels))
    with pytest.raises(ValueError, match="one integer class index per text"):
        classical_baseline((texts, np.array([1])), (texts, labels))
    with pytest.raises(ValueError, match="one class only"):
        classical_baseline((texts, np.array([1, 1])), (texts, labels))
    with pytest.raises(TypeError, match="raw strings"):
        classical_baseline(([1, 2], labels), (texts, labels))
    with pytest.raises(TypeError, match="pair"):
        classical_baseline(texts + ["a third"], (texts, labels))


def test_three_classes_get_one_probability_column_each() -> None:
    rng = np.random.default_rng(3)
    words = {0: ["awful", "terrible"], 1: ["fine", "okay"], 2: ["great", "wonderful"]}

    def three(n: int) -> tuple[list[str], np.ndarray]:
        labels = rng.integers(0, 3, n)
        return [" ".join([*rng.choice(FILLER, 5), *rng.choice(words[y], 2)]) for y in labels], labels

    model = classical_baseline(three(150), three(60))
    texts, labels = three(60)
    assert model.predict_proba(texts).shape == (60, 3) and np.mean(model.predict(texts) == labels) > 0.95
