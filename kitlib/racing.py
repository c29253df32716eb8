"""Fair races between models: one budget rule to train them, one test set to score them, a verdict with its noise.

Every comparison a lesson makes goes through here. Each Keras contender trains under `Budget`: early
stopping on validation loss, the same maximum number of epochs, the best weights restored. All
contenders are scored on the same test examples, and `race` reports each paired difference in accuracy
with a paired-bootstrap interval over those examples and McNemar's exact test. The verdict (wins, ties,
loses) comes from the interval: a contender wins only when the whole interval lies above zero.

The paired bootstrap resamples test examples with replacement and recomputes the difference in accuracy.
Per example the difference is +1 (only A right), 0 (both or neither) or -1 (only B right), so one resample
is a multinomial draw of those three counts: `race` draws the counts directly, the same distribution as
resampling the indices (`np.random.default_rng(seed).integers(0, n, (draws, n))`) at a cost that does not
grow with the test set.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

import numpy as np

from kitlib import evaluate

VERDICTS = ("wins", "ties", "loses")


@dataclasses.dataclass(frozen=True)
class Budget:
    """The budget rule every Keras contender of a race trains under (state it once, print `describe()`).

    `min_steps`: an epoch is at least this many batches. A training set smaller than `min_steps` batches is
    repeated to fill one, so that early stopping judges a model after that many updates rather than after one
    (40 labels in batches of 64 would otherwise give epochs of a single step, and `patience` such epochs stop a
    run before it has learned anything). Applies to arrays (or a dict of arrays) given with `batch_size`.
    """

    max_epochs: int
    patience: int = 2
    monitor: str = "val_loss"
    min_steps: int = 1

    def __post_init__(self) -> None:
        if self.max_epochs < 1 or self.patience < 0 or self.min_steps < 1:
            raise ValueError(f"Budget needs max_epochs >= 1, patience >= 0 and min_steps >= 1 "
                             f"(got {self.max_epochs}, {self.patience}, {self.min_steps}).")

    def callbacks(self) -> list[Any]:
        """Early stopping on validation with the best weights restored: the one callback set for a race."""
        import keras

        mode = "max" if "acc" in self.monitor else "min"
        return [keras.callbacks.EarlyStopping(monitor=self.monitor, mode=mode, patience=self.patience,
                                              restore_best_weights=True)]

    def fit(self, model: Any, x: Any, y: Any = None, *, val: Any, **fit_kwargs: Any) -> Any:
        """`model.fit(x, y)` under this budget, validated on `val`; returns the History. Extra callbacks are kept."""
        callbacks = [*fit_kwargs.pop("callbacks", []), *self.callbacks()]
        fit_kwargs.setdefault("verbose", 0)
        x, y = self._filled(x, y, fit_kwargs.get("batch_size"))
        return model.fit(x, y, validation_data=val, epochs=self.max_epochs, callbacks=callbacks, **fit_kwargs)

    def _filled(self, x: Any, y: Any, batch_size: int | None) -> tuple[Any, Any]:
        """x and y repeated until an epoch holds `min_steps` batches (arrays only; anything else as given)."""
        columns = x if isinstance(x, Mapping) else {None: x}
        if self.min_steps == 1 or not batch_size or not all(isinstance(v, np.ndarray) for v in columns.values()):
            return x, y
        n = len(next(iter(columns.values())))
        if n == 0 or -(-n // batch_size) >= self.min_steps:
            return x, y
        rows = np.tile(np.arange(n), -(-self.min_steps * batch_size // n))
        filled = {k: v[rows] for k, v in columns.items()}
        return (filled if isinstance(x, Mapping) else filled[None]), (None if y is None else np.asarray(y)[rows])

    def describe(self) -> str:
        """The rule as a sentence for the notebook."""
        steps = (f" (an epoch is at least {self.min_steps} batches: a smaller training set is repeated to fill one)"
                 if self.min_steps > 1 else "")
        return (f"every contender trains for at most {self.max_epochs} epochs{steps}, stops when {self.monitor} has "
                f"not improved for {self.patience} epochs, and keeps its best weights")


def _labels(predictions: Any, name: str, n: int) -> np.ndarray:
    """Predicted class indices from labels (n,), sigmoid probabilities (n,) or (n, 1), or class probabilities (n, k)."""
    predictions = np.asarray(predictions)
    if predictions.dtype == bool:
        predictions = predictions.astype(int)
    if predictions.ndim == 2 and predictions.shape[1] == 1:
        predictions = predictions[:, 0]
    if predictions.ndim == 2:
        labels = predictions.argmax(axis=1)
    elif predictions.ndim == 1 and np.issubdtype(predictions.dtype, np.floating):
        if predictions.size and (predictions.min() < 0 or predictions.max() > 1):
            raise ValueError(f"{name}: 1-D float predictions must be probabilities of class 1 in [0, 1]; "
                             "pass class indices (ints) or a (n, classes) probability array instead.")
        labels = (predictions > 0.5).astype(int)
    elif predictions.ndim == 1 and np.issubdtype(predictions.dtype, np.integer):
        labels = predictions
    else:
        raise ValueError(f"{name}: expected class indices (n,) or probabilities (n,) / (n, classes); "
                         f"got shape {predictions.shape}, dtype {predictions.dtype}.")
    if len(labels) != n:
        raise ValueError(f"{name} has {len(labels)} predictions but there are {n} test labels; score every "
                         "contender on the same test examples.")
    return labels.astype(int)


@dataclasses.dataclass(frozen=True)
class Difference:
    """Contender `a` against `b` on the same test examples: accuracies, the paired difference and its verdict."""

    a: str
    b: str
    accuracy_a: float
    accuracy_b: float
    low: float  # bounds of the interval of accuracy_a - accuracy_b
    high: float
    p_value: float  # McNemar's exact test on the examples where exactly one of them is right
    only_a: int  # test examples only a gets right
    only_b: int
    n: int
    level: float

    @property
    def difference(self) -> float:
        """Accuracy of `a` minus accuracy of `b`."""
        return self.accuracy_a - self.accuracy_b

    @property
    def verdict(self) -> str:
        """'wins' when the whole interval is above zero, 'loses' when below, else 'ties'."""
        return "wins" if self.low > 0 else "loses" if self.high < 0 else "ties"

    def sentence(self, unit: str = "test examples") -> str:
        """The verdict as the sentence a notebook prints."""
        verb = {"wins": "beats", "ties": "ties with", "loses": "loses to"}[self.verdict]
        noise = "" if self.verdict != "ties" else " (the difference is within the noise of this test set)"
        return (f"{self.a} {verb} {self.b}{noise}: {self.accuracy_a:.1%} vs {self.accuracy_b:.1%} on the same "
                f"{self.n:,} {unit}, difference {100 * self.difference:+.1f} points "
                f"({self.level:.0%} paired-bootstrap interval {100 * self.low:+.1f} to {100 * self.high:+.1f}; "
                f"McNemar p = {self.p_value:.3g}).")


@dataclasses.dataclass(frozen=True)
class Race:
    """The contenders' accuracies on one test set and their paired differences."""

    accuracies: dict[str, float]
    differences: list[Difference]
    n: int

    def verdict(self, a: str, b: str) -> str:
        """The verdict of `a` against `b` (either order)."""
        return self.difference(a, b).verdict

    def difference(self, a: str, b: str) -> Difference:
        """The paired difference of `a` against `b` (either order; flipped when raced the other way)."""
        for d in self.differences:
            if (d.a, d.b) == (a, b):
                return d
            if (d.a, d.b) == (b, a):
                return Difference(a, b, d.accuracy_b, d.accuracy_a, -d.high, -d.low, d.p_value, d.only_b,
                                  d.only_a, d.n, d.level)
        raise KeyError(f"{a!r} and {b!r} were not raced; contenders: {', '.join(self.accuracies)}.")

    def sentences(self, unit: str = "test examples") -> str:
        """One verdict sentence per raced pair."""
        return "\n".join(d.sentence(unit) for d in self.differences)

    def table(self) -> str:
        """The paired differences as a Markdown table."""
        return evaluate.render_table(
            ["contender", "against", "accuracy", "against's", "difference (points)", "interval", "McNemar p",
             "verdict"],
            [[d.a, d.b, f"{d.accuracy_a:.1%}", f"{d.accuracy_b:.1%}", f"{100 * d.difference:+.1f}",
              f"{100 * d.low:+.1f} to {100 * d.high:+.1f}", f"{d.p_value:.3g}", d.verdict] for d in self.differences])


def mcnemar_p(only_a: int, only_b: int) -> float:
    """McNemar's exact test: two-sided binomial p of `only_a` among the examples where exactly one is right."""
    from scipy.stats import binomtest

    return 1.0 if only_a + only_b == 0 else float(binomtest(only_a, only_a + only_b, 0.5).pvalue)


def paired_bootstrap(correct_a: np.ndarray, correct_b: np.ndarray, *, draws: int = 10_000, level: float = 0.95,
                     seed: int = 0) -> tuple[float, float]:
    """Percentile interval of accuracy(a) - accuracy(b), resampling the test examples (seeded)."""
    correct_a, correct_b = np.asarray(correct_a, dtype=bool), np.asarray(correct_b, dtype=bool)
    n = len(correct_a)
    counts = [np.sum(correct_a & ~correct_b), np.sum(~correct_a & correct_b)]
    shares = np.array([counts[0], n - counts[0] - counts[1], counts[1]]) / n
    resampled = np.random.default_rng(seed).multinomial(n, shares, size=draws)
    differences = (resampled[:, 0] - resampled[:, 2]) / n
    tail = (1 - level) / 2
    low, high = np.quantile(differences, [tail, 1 - tail])
    return float(low), float(high)


def race(y_true: Sequence[int], predictions: Mapping[str, Any], *, against: str | None = None, level: float = 0.95,
         draws: int = 10_000, seed: int = 0) -> Race:
    """Race contenders scored on the same test examples: each paired difference, its interval and verdict.

    `predictions` maps a contender's name to its predictions on `y_true`'s examples (class indices or
    probabilities). With `against`, every other contender is raced against that one; otherwise every
    pair, in the order given.
    """
    y_true = np.asarray(y_true, dtype=int)
    if y_true.ndim != 1 or len(y_true) == 0:
        raise ValueError(f"y_true must be a non-empty 1-D array of class indices; got shape {y_true.shape}.")
    if len(predictions) < 2:
        raise ValueError(f"A race needs at least two contenders; got {list(predictions)}.")
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1 (got {level}).")
    if against is not None and against not in predictions:
        raise KeyError(f"against={against!r} is not a contender; contenders: {', '.join(predictions)}.")
    correct = {name: _labels(p, name, len(y_true)) == y_true for name, p in predictions.items()}
    names = list(correct)
    pairs = ([(name, against) for name in names if name != against] if against is not None
             else [(a, b) for i, a in enumerate(names) for b in names[i + 1:]])
    differences = []
    for a, b in pairs:
        only_a, only_b = int(np.sum(correct[a] & ~correct[b])), int(np.sum(~correct[a] & correct[b]))
        low, high = paired_bootstrap(correct[a], correct[b], draws=draws, level=level, seed=seed)
        differences.append(Difference(a, b, float(correct[a].mean()), float(correct[b].mean()), low, high,
                                      mcnemar_p(only_a, only_b), only_a, only_b, len(y_true), level))
    return Race({name: float(c.mean()) for name, c in correct.items()}, differences, len(y_true))
