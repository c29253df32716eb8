"""The classical text baseline of record: TF-IDF n-grams + logistic regression, tuned on validation.

It is what a practitioner tries first on a text task, and on IMDB it is strong (lesson 02 introduces it,
lessons 03, 04, 06 and the text recipe race against it). The n-gram range and the regularisation strength
C are chosen on the validation split, never on test; the chosen model is the one fitted on train.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import numpy as np

NGRAM_RANGES: tuple[tuple[int, int], ...] = ((1, 1), (1, 2))
CS: tuple[float, ...] = (0.25, 1.0, 4.0, 16.0)


@dataclasses.dataclass
class ClassicalBaseline:
    """A fitted TF-IDF + logistic-regression pipeline with the validation grid that chose it."""

    pipeline: Any  # sklearn.pipeline.Pipeline: TfidfVectorizer -> LogisticRegression
    ngram_range: tuple[int, int]
    C: float
    val_accuracy: float
    grid: list[dict[str, Any]]  # one row per (ngram_range, C): val accuracy and log loss
    n_classes: int

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Class probabilities of raw strings, shape (n, n_classes), columns in class-index order."""
        texts = _texts(texts, "texts")
        seen = self.pipeline.predict_proba(texts)
        probabilities = np.zeros((len(texts), self.n_classes))
        probabilities[:, self.pipeline.classes_] = seen  # a class missing from train keeps probability 0
        return probabilities

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        """The most probable class index of each raw string."""
        return self.predict_proba(texts).argmax(axis=1)

    def get_weights(self) -> list[np.ndarray]:
        """What ships: the vocabulary (in column order), the idf weights, the coefficients and intercepts."""
        tfidf, logreg = self.pipeline.named_steps["tfidf"], self.pipeline.named_steps["logreg"]
        vocabulary = np.array(sorted(tfidf.vocabulary_, key=tfidf.vocabulary_.get))
        return [vocabulary, tfidf.idf_, logreg.coef_, logreg.intercept_]

    def count_params(self) -> int:
        """The fitted numbers: an idf weight per n-gram, a coefficient per n-gram and class, the intercepts."""
        return int(sum(w.size for w in self.get_weights()[1:]))

    def describe(self) -> str:
        """One line: what was chosen, and its validation accuracy."""
        low, high = self.ngram_range
        grams = "unigrams" if high == 1 else f"{low}- to {high}-grams"
        return (f"TF-IDF {grams} + logistic regression, C={self.C:g} "
                f"(chosen on validation: {self.val_accuracy:.1%} of {self.grid[0]['n_val']} examples)")


def _texts(texts: Any, name: str) -> list[str]:
    """Raw strings as a list; bytes are decoded; a clear error for anything else."""
    if isinstance(texts, (str, bytes)):
        raise TypeError(f"{name} must be a sequence of strings, not one string; wrap it in a list.")
    out = [t.decode("utf-8", errors="replace") if isinstance(t, bytes) else t for t in texts]
    wrong = [type(t).__name__ for t in out if not isinstance(t, str)]
    if wrong:
        raise TypeError(f"{name} must hold raw strings; found {wrong[0]}. Pass the texts, e.g. data.texts('train').")
    return out


def _split(pair: tuple[Sequence[str], Sequence[int]], name: str) -> tuple[list[str], np.ndarray]:
    """(texts, integer labels) of one split, checked to pair up."""
    try:
        texts, labels = pair
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a (texts, labels) pair, e.g. data.splits[{name!r}].") from None
    texts, labels = _texts(texts, f"{name} texts"), np.asarray(labels)
    if labels.ndim != 1 or len(labels) != len(texts) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{name} needs one integer class index per text; got {len(texts)} texts and labels of "
                         f"shape {labels.shape}, dtype {labels.dtype}.")
    if len(texts) == 0:
        raise ValueError(f"{name} is empty; the baseline needs examples to fit and to choose on.")
    return texts, labels


def classical_baseline(
    train: tuple[Sequence[str], Sequence[int]],
    val: tuple[Sequence[str], Sequence[int]],
    *,
    ngram_ranges: Sequence[tuple[int, int]] = NGRAM_RANGES,
    cs: Sequence[float] = CS,
    max_features: int | None = 200_000,
) -> ClassicalBaseline:
    """Fit TF-IDF n-grams + logistic regression on `train` for each (n-gram range, C); keep the best on `val`.

    `train` and `val` are (texts, labels) pairs, e.g. `data.splits["train"]`. The best is the highest
    validation accuracy, ties broken by the lower validation log loss. Test is not seen here.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss
    from sklearn.pipeline import Pipeline

    train_texts, train_labels = _split(train, "train")
    val_texts, val_labels = _split(val, "val")
    if len(np.unique(train_labels)) < 2:
        raise ValueError("train has examples of one class only; a classifier needs at least two classes.")
    if not ngram_ranges or not cs:
        raise ValueError("ngram_ranges and cs must each list at least one setting to choose from.")
    n_classes = int(max(train_labels.max(), val_labels.max())) + 1
    # liblinear is exact and fast for two classes (about 10x lbfgs on sparse n-grams here); lbfgs is multinomial
    solver = "liblinear" if len(np.unique(train_labels)) == 2 else "lbfgs"
    grid, best, best_key = [], None, None
    for ngram_range in ngram_ranges:
        vectorizer = TfidfVectorizer(ngram_range=tuple(ngram_range), sublinear_tf=True, max_features=max_features)
        features = vectorizer.fit_transform(train_texts)  # fitted once per n-gram range, shared by every C
        val_features = vectorizer.transform(val_texts)
        for c in cs:
            classifier = LogisticRegression(C=float(c), solver=solver, max_iter=2000).fit(features, train_labels)
            seen = classifier.predict_proba(val_features)
            probabilities = np.full((len(val_texts), n_classes), 1e-12)
            probabilities[:, classifier.classes_] = seen
            accuracy = float(np.mean(probabilities.argmax(axis=1) == val_labels))
            loss = float(log_loss(val_labels, probabilities, labels=np.arange(n_classes)))
            grid.append({"ngram_range": tuple(ngram_range), "C": float(c), "val_accuracy": accuracy,
                         "val_log_loss": loss, "n_val": len(val_texts)})
            if best_key is None or (accuracy, -loss) > best_key:
                best_key = (accuracy, -loss)
                best = ClassicalBaseline(Pipeline([("tfidf", vectorizer), ("logreg", classifier)]),
                                         tuple(ngram_range), float(c), accuracy, grid, n_classes)
    return best
