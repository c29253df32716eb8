"""Lesson 08 (hyperparameter search): the search space on `hp`, its grid variant, the best-so-far curve."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from kitlib.checks.core import call, call_on_copies, exercise, expect, expect_unseen, passed, unseen_rng

BATCH_SIZES = [16, 32, 64]
_SPACE_SECTION = "'The search space' and Exercise 1 in lesson 08"
_GRID_SECTION = "Exercise 2 in lesson 08"
_CURVE_SECTION = "'Reading a search: the best-so-far curve' in lesson 08"


def _describe(parameter: Any) -> str:
    """A hyperparameter as the learner declared it, e.g. `Float [0.0, 0.5] sampling=linear`."""
    config = parameter.get_config()
    if "values" in config:
        return f"{type(parameter).__name__} {list(config['values'])}"
    if "value" in config:
        return f"{type(parameter).__name__} {config['value']!r}"
    return (f"{type(parameter).__name__} [{config.get('min_value')}, {config.get('max_value')}] "
            f"sampling={config.get('sampling')}")


def _kind(make: str) -> type:
    """The class of a hyperparameter that `HyperParameters().<make>` declares (KerasTuner's public API only)."""
    import keras_tuner

    hp = keras_tuner.HyperParameters()
    getattr(hp, make)("x", *{"Float": (0.0, 1.0), "Int": (0, 1), "Choice": ([0, 1],), "Boolean": ()}[make])
    return type(hp.space[0])


def _values(parameter: Any) -> list | None:
    """The values a Choice offers, or None for any other kind of hyperparameter."""
    return list(parameter.get_config()["values"]) if "values" in parameter.get_config() else None


def _fixed(values: dict) -> Any:
    """HyperParameters on which the tuner fixed every knob to `values`."""
    import keras_tuner

    hp = keras_tuner.HyperParameters()
    for name, value in values.items():
        hp.Fixed(name, value)
    return hp


@exercise("""
    return {"learning_rate": hp.Float("learning_rate", 1e-5, 1e-2, sampling="log"),
            "dropout": hp.Float("dropout", 0.0, 0.5, step=0.1),
            "batch_size": hp.Choice("batch_size", [16, 32, 64]),
            "unfreeze": hp.Choice("unfreeze", UNFREEZE_CHOICES)}
    """, "search_space")
def search_space(fn: Callable[[Any], dict], unfreeze_choices: Sequence[int]) -> None:
    """Check `fn(hp)` declares the lesson's four knobs on `hp` with the prompt's ranges and returns hp's values."""
    import keras_tuner

    hp = keras_tuner.HyperParameters()
    got = call(fn, hp)
    want = {"learning_rate", "dropout", "batch_size", "unfreeze"}
    expect(isinstance(got, dict), "search_space should return a dict of the chosen values.", sorted(want),
           type(got).__name__, "One entry per knob, under the knob's name.")
    expect(set(got) == want, "Four knobs are searched.", sorted(want), sorted(got), "Use exactly these keys.")
    space = {p.name: p for p in hp.space}
    expect(want <= set(space), "Each knob must be declared on `hp` under its own name, so the tuner can vary it.",
           sorted(want), sorted(space),
           f"Each value comes from a call on hp that names the knob: see {_SPACE_SECTION}.")
    lr = space["learning_rate"].get_config()
    expect(isinstance(space["learning_rate"], _kind("Float")) and lr["sampling"] == "log",
           "Learning rates matter by orders of magnitude: sample them on a log scale.",
           "hp.Float('learning_rate', 1e-5, 1e-2, sampling='log')", _describe(space["learning_rate"]),
           "A Float can be sampled on another scale than the linear one.")
    expect(np.isclose(lr["min_value"], 1e-5) and np.isclose(lr["max_value"], 1e-2),
           "The range spans fine-tuning rates (1e-5) to head-training rates (1e-2).", "[1e-05, 0.01]",
           [lr["min_value"], lr["max_value"]], "The prompt gives the range's two ends.")
    dropout = space["dropout"]
    config = dropout.get_config()
    low, high = ((min(_values(dropout)), max(_values(dropout))) if _values(dropout)
                 else (config.get("min_value"), config.get("max_value")))
    expect(isinstance(dropout, (_kind("Float"), _kind("Choice")))
           and low is not None and np.isclose(low, 0.0) and np.isclose(high, 0.5),
           "Dropout is a fraction from 0 (none) to 0.5.", "hp.Float('dropout', 0.0, 0.5, step=0.1) "
           "(or a Choice from 0.0 to 0.5)", _describe(dropout), "The prompt gives the range's two ends.")
    batch = space["batch_size"]
    expect(_values(batch) is not None and sorted(_values(batch)) == BATCH_SIZES, "Batch size is one of 16, 32 and 64.",
           f"hp.Choice('batch_size', {BATCH_SIZES})", _describe(batch), "A knob with a few listed values is a Choice.")
    unfreeze = space["unfreeze"]
    expect(_values(unfreeze) is not None and sorted(_values(unfreeze)) == sorted(unfreeze_choices),
           "How much to unfreeze is one of UNFREEZE_CHOICES, 0 (a frozen backbone, often best with little data) "
           "included: the lesson's backbone counts these values.", f"hp.Choice('unfreeze', {list(unfreeze_choices)})",
           _describe(unfreeze), "The lesson's knobs cell defines the list to choose from.")
    chosen = {name: hp.get(name) for name in sorted(want)}
    expect({name: got[name] for name in sorted(want)} == chosen,
           "Return the values `hp` chose, so the model is built with what the tuner records.", chosen,
           {name: got[name] for name in sorted(want)}, "Each call on hp returns the value chosen: return those.")
    shown = {"learning_rate": 3e-4, "unfreeze": max(unfreeze_choices)}
    got = call(fn, _fixed(shown))
    expect({name: got[name] for name in shown} == shown, "When the tuner fixes a value, the function must use it.",
           shown, {name: got[name] for name in shown}, "Read every value from hp: do not hard-code any.")
    rng = unseen_rng("search_space")
    for _ in range(2):
        values = {"learning_rate": float(10 ** rng.uniform(-5, -2)), "dropout": float(rng.choice([0.1, 0.2, 0.4])),
                  "batch_size": int(rng.choice(BATCH_SIZES[1:])), "unfreeze": int(rng.choice(unfreeze_choices))}
        got = call(fn, _fixed(values))
        expect_unseen(isinstance(got, dict) and got == values, "the tuner fixed every knob to other values: the "
                      "dict does not return them.", "Read every value from hp: do not hard-code any.")
    passed("four knobs declared with the lesson's ranges, learning rate on a log scale, frozen backbone a candidate.")


@exercise("""
    hp = keras_tuner.HyperParameters(); hp.Choice("learning_rate", LEARNING_RATE_GRID);
    hp.Choice("dropout", [0.1, 0.3]); hp.Fixed("batch_size", 32); hp.Choice("unfreeze", UNFREEZE_CHOICES); return hp
    """, "grid_space")
def grid_space(fn: Callable[[], Any], unfreeze_choices: Sequence[int], max_trials: int) -> None:
    """Check `fn()` returns HyperParameters declaring the four knobs as a grid of at least `max_trials` cells."""
    import keras_tuner

    hp = call(fn)
    expect(isinstance(hp, keras_tuner.HyperParameters), "grid_space should return the grid as HyperParameters.",
           "a keras_tuner.HyperParameters with the four knobs declared on it", type(hp).__name__,
           "Create a HyperParameters object, declare the knobs on it, and return the object itself.")
    space = {p.name: p for p in hp.space}
    want = {"learning_rate", "dropout", "batch_size", "unfreeze"}
    expect(set(space) == want, "The grid declares the same four knobs as search_space, under the same names, so "
           "search_space(hp) reads the grid's values.", sorted(want), sorted(space), "Declare exactly these names.")
    continuous = sorted(name for name, p in space.items() if _values(p) is None and "value" not in p.get_config())
    expect(not continuous, "A grid lists its values: GridSearch would pick 10 evenly spaced values from a range.",
           "hp.Choice (or hp.Fixed) for every knob", {name: _describe(space[name]) for name in continuous},
           f"A grid knob is a list of values or one fixed value: see {_GRID_SECTION}.")
    values = {name: (_values(p) if _values(p) is not None else [p.get_config()["value"]]) for name, p in space.items()}
    bounds = {"learning_rate": (1e-5, 1e-2), "dropout": (0.0, 0.5)}
    for name, (low, high) in bounds.items():
        expect(all(low - 1e-12 <= v <= high + 1e-12 for v in values[name]),
               f"The grid's {name} values stay within search_space's range.", f"values in [{low}, {high}]",
               values[name], f"Pick {name} values from [{low}, {high}].")
    expect(set(values["batch_size"]) <= set(BATCH_SIZES), "Batch sizes come from search_space's choices.",
           f"values among {BATCH_SIZES}", values["batch_size"], "The prompt fixes the batch size.")
    expect(set(values["unfreeze"]) <= set(unfreeze_choices), "How much to unfreeze comes from UNFREEZE_CHOICES.",
           f"values among {list(unfreeze_choices)}", values["unfreeze"], "The lesson's knobs cell defines the list.")
    expect(len(set(values["learning_rate"])) >= 2, "The knob that matters most gets more than one value.",
           "at least two learning rates", values["learning_rate"],
           "The lesson's knobs cell defines LEARNING_RATE_GRID.")
    cells = int(np.prod([len(v) for v in values.values()]))
    expect(cells >= max_trials, "Every tuner gets MAX_TRIALS trials: a smaller grid would stop the grid search early.",
           f"at least {max_trials} combinations", f"{cells} = " + " x ".join(str(len(v)) for v in values.values()),
           "Give one of the knobs more values.")
    passed(f"a grid of {cells} combinations over the four knobs, within search_space's ranges.")


def _curve(scores: list) -> list[float]:
    """The reference best-so-far curve."""
    curve, best = [], float("nan")
    for score in scores:
        if score is not None and not np.isnan(score) and (np.isnan(best) or score > best):
            best = float(score)
        curve.append(best)
    return curve


def _same_curve(got: list, want: list[float]) -> bool:
    """Whether two curves are equal, NaN matching NaN."""
    return len(got) == len(want) and all(isinstance(g, float) and (g == w or (np.isnan(g) and np.isnan(w)))
                                         for g, w in zip(got, want))


def _as_floats(got: Any) -> list:
    """The curve as floats (None as NaN), or as it came when its values are not numbers."""
    try:
        return [float("nan") if g is None else float(g) for g in got]
    except (TypeError, ValueError):
        return list(got)


@exercise("""
    curve, best = [], float("nan"); for each score: if it is not None and not NaN and (best is NaN or score > best):
    best = float(score); then curve.append(best) for every score, failed ones too. return curve
    """, "best_so_far")
def best_so_far(fn: Callable[[list], list]) -> None:
    """Check `fn(scores)` returns the running maximum of trial scores, carrying over failed (None/NaN) trials."""
    nan = float("nan")
    cases = [([0.6, 0.55, 0.7, 0.65, 0.8], [0.6, 0.6, 0.7, 0.7, 0.8], "After each trial, the best score seen so far."),
             ([None, 0.5, nan, 0.4], [nan, 0.5, 0.5, 0.5], "Failed trials (None or NaN) change nothing; before the "
              "first success there is no best yet (NaN)."),
             ([0.3, nan, None, 0.2, 0.9], [0.3, 0.3, 0.3, 0.3, 0.9], "A failed trial in the middle keeps the best "
              "so far, and later trials still count."),
             ([], [], "No trials, no curve.")]
    for scores, want, why in cases:
        got = _as_floats(call_on_copies(fn, scores))
        if len(got) != len(want):
            hint = "Return one value per trial, failed ones included (they repeat the best so far)."
        elif any(np.isnan(w) != np.isnan(g) for w, g in zip(want, got) if isinstance(g, float)):
            hint = ("Skip None and NaN when updating the maximum (np.maximum.accumulate lets a NaN spread), and "
                    "start from NaN, not 0.")
        else:
            hint = f"A running maximum, updated by successful trials only: see {_CURVE_SECTION}."
        expect(_same_curve(got, want), f"{why} Scores: {scores}.", want, got, hint)
    rng = unseen_rng("best_so_far")
    for length in (12, 30):
        scores = [None if r < 0.15 else nan if r < 0.3 else float(s) for r, s in zip(rng.random(length),
                                                                                     rng.uniform(0, 1, length))]
        expect_unseen(_same_curve(_as_floats(call_on_copies(fn, scores, shown=False)), _curve(scores)),
                      "other scores, failed trials among them: the curve is not the best score so far after each "
                      "trial.", f"See {_CURVE_SECTION}.")
    passed("a best-so-far curve that never goes down and ignores failed trials.")
