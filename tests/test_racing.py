"""Fair races: the paired-bootstrap interval covers the truth, identical models tie, a clear winner wins."""

from __future__ import annotations

import numpy as np
import pytest

import kitlib
from kitlib import racing


def _simulated(rng: np.random.Generator, n: int, p_a: float, p_b: float) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Binary labels and two contenders right with probabilities p_a and p_b, independently per example."""
    y = rng.integers(0, 2, n)
    right_a, right_b = rng.random(n) < p_a, rng.random(n) < p_b
    return y, {"A": np.where(right_a, y, 1 - y), "B": np.where(right_b, y, 1 - y)}


def test_the_interval_covers_the_true_difference_about_as_often_as_it_says() -> None:
    rng = np.random.default_rng(0)
    covered = 0
    trials = 200
    for trial in range(trials):
        y, predictions = _simulated(rng, 500, 0.85, 0.80)
        d = racing.race(y, predictions, draws=2000, seed=trial).difference("A", "B")
        covered += d.low <= 0.05 <= d.high
    assert 0.90 <= covered / trials <= 0.99, covered  # a 95% interval: about 190 of 200


def test_the_multinomial_draw_matches_resampling_the_indices() -> None:
    rng = np.random.default_rng(1)
    y, predictions = _simulated(rng, 400, 0.8, 0.7)
    a, b = predictions["A"] == y, predictions["B"] == y
    indices = np.random.default_rng(2).integers(0, len(y), (4000, len(y)))
    by_index = np.quantile(a[indices].mean(axis=1) - b[indices].mean(axis=1), [0.025, 0.975])
    low, high = racing.paired_bootstrap(a, b, draws=4000, seed=3)
    assert abs(low - by_index[0]) < 0.01 and abs(high - by_index[1]) < 0.01


def test_identical_predictions_tie_and_a_clear_winner_wins() -> None:
    rng = np.random.default_rng(4)
    y, predictions = _simulated(rng, 2000, 0.9, 0.6)
    same = kitlib.race(y, {"A": predictions["A"], "copy of A": predictions["A"].copy()})
    d = same.difference("A", "copy of A")
    assert d.verdict == "ties" and d.low == d.high == 0.0 and d.p_value == 1.0
    assert "ties with" in d.sentence()
    result = kitlib.race(y, predictions, against="B")
    assert result.verdict("A", "B") == "wins" and result.verdict("B", "A") == "loses"
    assert result.difference("A", "B").p_value < 1e-6
    assert result.sentences().startswith("A beats B: ") and "2,000 test examples" in result.sentences()
    assert "| A | B |" in result.table() and "wins" in result.table()


def test_a_small_gap_on_a_small_test_set_is_a_tie() -> None:
    """One point on 500 examples is within the noise: the verdict is a tie, not a winner."""
    y = np.zeros(500, int)
    a = np.r_[np.zeros(400, int), np.ones(100, int)]  # 80.0% right
    b = np.r_[np.ones(10, int), np.zeros(395, int), np.ones(95, int)]  # 79.0% right
    d = kitlib.race(y, {"A": a, "B": b}).difference("A", "B")
    assert d.difference == pytest.approx(0.01) and d.verdict == "ties"


def test_seeded_and_accepting_probabilities() -> None:
    rng = np.random.default_rng(5)
    y, predictions = _simulated(rng, 300, 0.8, 0.75)
    probabilities = np.eye(2)[predictions["A"]] * 0.8 + 0.1  # (n, 2) class probabilities, same argmax
    first = kitlib.race(y, {"A": probabilities, "B": predictions["B"]}, seed=7)
    again = kitlib.race(y, {"A": predictions["A"], "B": predictions["B"]}, seed=7)
    assert first.differences == again.differences
    sigmoid = kitlib.race(y, {"A": probabilities[:, 1:], "B": predictions["B"]}, seed=7)
    assert sigmoid.differences == first.differences


def test_bad_races_get_clear_errors() -> None:
    y = np.array([0, 1, 1])
    with pytest.raises(ValueError, match="same test examples"):
        kitlib.race(y, {"A": [0, 1], "B": [0, 1, 1]})
    with pytest.raises(ValueError, match="at least two contenders"):
        kitlib.race(y, {"A": [0, 1, 1]})
    with pytest.raises(KeyError, match="not a contender"):
        kitlib.race(y, {"A": [0, 1, 1], "B": [0, 1, 1]}, against="C")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        kitlib.race(y, {"A": np.array([0.2, 3.0, 0.1]), "B": [0, 1, 1]})


def test_the_budget_rule_stops_early_and_restores_the_best_weights() -> None:
    import keras

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, 20)).astype("float32"), rng.integers(0, 2, 64)
    x_val, y_val = rng.normal(size=(64, 20)).astype("float32"), rng.integers(0, 2, 64)  # noise: it overfits
    model = keras.Sequential([keras.Input((20,)), keras.layers.Dense(64, activation="relu"),
                              keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="binary_crossentropy")
    budget = kitlib.Budget(max_epochs=50, patience=2)
    history = budget.fit(model, x, y, val=(x_val, y_val), batch_size=16)
    losses = history.history["val_loss"]
    assert len(losses) < 50, "validation loss on noise stops improving; early stopping ends the run"
    best = int(np.argmin(losses))
    assert len(losses) == best + 1 + budget.patience
    assert model.evaluate(x_val, y_val, verbose=0) == pytest.approx(losses[best], rel=1e-4)
    assert "at most 50 epochs" in budget.describe()
    with pytest.raises(ValueError, match="max_epochs"):
        kitlib.Budget(max_epochs=0)


def test_min_steps_fills_an_epoch_of_a_tiny_training_set() -> None:
    import keras

    seen = []

    class Count(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(self.params["steps"])

    keras.utils.set_random_seed(0)
    x = {"a": np.arange(12, dtype="float32")[:, None], "b": np.ones((12, 1), "float32")}
    y = (np.arange(12) % 2).astype("float32")
    inputs = {k: keras.Input((1,), name=k) for k in x}
    model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(keras.layers.Concatenate()(list(inputs.values()))))
    model.compile(optimizer="adam", loss="binary_crossentropy")
    budget = kitlib.Budget(max_epochs=2, patience=5, min_steps=10)
    budget.fit(model, x, y, val=(x, y), batch_size=8, callbacks=[Count()])
    assert seen == [11, 11], "12 examples in batches of 8: 7 whole copies, 84 rows, the first 11 batches >= 10"
    filled, labels = budget._filled(x, y, 8)
    assert len(labels) == 84 and np.array_equal(filled["a"][12:24, 0], np.arange(12)), "whole copies, rows aligned"
    assert np.array_equal(labels[:12], y)
    big = np.zeros((200, 1), "float32")
    assert budget._filled(big, np.zeros(200), 8)[0] is big, "a set of 25 batches is left as it is"
    assert "at least 10 batches" in budget.describe() and "at least" not in kitlib.Budget(3).describe()
    with pytest.raises(ValueError, match="min_steps"):
        kitlib.Budget(max_epochs=3, min_steps=0)
