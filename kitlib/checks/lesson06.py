"""Lesson 06 (choosing a model): the Pareto front, the most accurate model within a budget."""

from __future__ import annotations

from typing import Callable

import numpy as np

from kitlib.checks.core import call_on_copies, exercise, expect, expect_unseen, passed, unseen_rng

# Six models: (accuracy, latency ms, disk MB). C is slower and less accurate than B: dominated. E ties A on latency
# but is less accurate: dominated. F is an exact duplicate of B's numbers: neither beats the other, both stay.
_CANDIDATES = [
    {"model": "A", "accuracy": 0.80, "latency_b1_ms": 2.0, "disk_mb": 1.0},
    {"model": "B", "accuracy": 0.88, "latency_b1_ms": 10.0, "disk_mb": 20.0},
    {"model": "C", "accuracy": 0.85, "latency_b1_ms": 30.0, "disk_mb": 5.0},
    {"model": "D", "accuracy": 0.91, "latency_b1_ms": 60.0, "disk_mb": 90.0},
    {"model": "E", "accuracy": 0.78, "latency_b1_ms": 2.0, "disk_mb": 0.5},
    {"model": "F", "accuracy": 0.88, "latency_b1_ms": 10.0, "disk_mb": 25.0},
]
# The same rows in three orders: as listed, slowest first, and a shuffle that puts E before A.
_ORDERS = [[0, 1, 2, 3, 4, 5], [3, 2, 5, 1, 4, 0], [4, 2, 5, 0, 3, 1]]
_FRONT_SECTION = "'The Pareto front' in lesson 06"
_BUDGET_SECTION = "'A decision guide' and Exercise 2 in lesson 06"


def _front(rows: list[dict]) -> list[str]:
    """The reference front: models no other one dominates, by latency (ties in input order)."""
    def dominates(a: dict, b: dict) -> bool:
        """Whether `a` is at least as good as `b` on both and strictly better on one."""
        at_least = a["accuracy"] >= b["accuracy"] and a["latency_b1_ms"] <= b["latency_b1_ms"]
        return at_least and (a["accuracy"] > b["accuracy"] or a["latency_b1_ms"] < b["latency_b1_ms"])

    front = [row for row in rows if not any(dominates(other, row) for other in rows)]
    return [row["model"] for row in sorted(front, key=lambda row: row["latency_b1_ms"])]


def _random_rows(rng: np.random.Generator, count: int) -> list[dict]:
    """`count` models of random accuracy, latency and size, with one duplicate and one tie on latency."""
    rows = [{"model": f"m{i}", "accuracy": float(rng.uniform(0.6, 0.95)),
             "latency_b1_ms": round(float(rng.uniform(1, 100)), 1), "disk_mb": round(float(rng.uniform(1, 500)), 1)}
            for i in range(count)]
    rows[-1] = dict(rows[0], model=f"m{count - 1}")  # a duplicate of m0's numbers
    rows[-2]["latency_b1_ms"] = rows[1]["latency_b1_ms"]  # a tie on latency
    return [rows[i] for i in rng.permutation(count)]


def _front_ok(got: object, rows: list[dict]) -> bool:
    """Whether `got` lists exactly the front's models, once each, fastest first."""
    latency = {row["model"]: row["latency_b1_ms"] for row in rows}
    return (isinstance(got, (list, tuple)) and sorted(got) == sorted(_front(rows))
            and [latency[m] for m in got] == sorted(latency[m] for m in got))


@exercise("""
    def dominates(a, b): at least as accurate and at least as fast, and strictly better on one of the two.
    front = [row for row in rows if not any(dominates(other, row) for other in rows)]
    return [row["model"] for row in sorted(front, key=lambda row: row["latency_b1_ms"])]
    """, "pareto_front")
def pareto_front(fn: Callable[[list[dict]], list[str]]) -> None:
    """Check `fn(rows)` names the models no other model beats on both accuracy and latency, fastest first."""
    latency = {row["model"]: row["latency_b1_ms"] for row in _CANDIDATES}
    for order in _ORDERS:
        rows = [dict(_CANDIDATES[i]) for i in order]
        shown = [row["model"] for row in rows]
        got = call_on_copies(fn, rows)
        expect(isinstance(got, (list, tuple)), "pareto_front should return a list of model names.",
               ["A", "B", "F", "D"], type(got).__name__, "Return the models' names, not the rows.")
        got = list(got)
        expect("C" not in got, "C is dominated: B is both faster (10 ms < 30 ms) and more accurate (0.88 > 0.85).",
               "no 'C'", got, f"A model is dominated when another one beats it on both counts: see {_FRONT_SECTION}.")
        expect("E" not in got, f"E is dominated: A is as fast (2 ms) and more accurate (rows in the order {shown}).",
               "no 'E'", got, "A tie on latency is not a win: compare each model with every other one, not only "
               "with the models before it in latency order.")
        expect("B" in got and "F" in got, "B and F have identical accuracy and latency: neither is strictly better, "
               "so neither dominates the other and both stay on the front.", "'B' and 'F'", got,
               "Dominating needs 'at least as good on both AND strictly better on one'.")
        expect(sorted(got) == ["A", "B", "D", "F"], "A (fastest), B and F, and D (most accurate) are each best at "
               "something.", ["A", "B", "F", "D"], got, "Keep every model that no other model dominates, once.")
        expect([latency[m] for m in got] == sorted(latency[m] for m in got), "List the front from fastest to "
               f"slowest, the order you read it on the plot (rows given in the order {shown}).",
               "A, then B and F (10 ms), then D", got, "The input rows come in any order: order the front yourself.")
    single = call_on_copies(fn, [dict(_CANDIDATES[2])])
    expect(list(single) == ["C"], "A lone model is on its own front.", ["C"], single, "Nothing dominates it.")
    rng = unseen_rng("pareto_front")
    for count in (9, 14):
        rows = _random_rows(rng, count)
        expect_unseen(_front_ok(call_on_copies(fn, rows, shown=False), rows), "other models: the answer is not "
                      "exactly the non-dominated ones, fastest first.", f"Compare every pair: see {_FRONT_SECTION}.")
    passed("the front keeps only models that are best at some trade-off, in any input order.")


def _pick(rows: list[dict], max_latency_ms: float, max_disk_mb: float) -> str | None:
    """The reference answer: the most accurate row within both budgets, or None."""
    fits = [row for row in rows if row["latency_b1_ms"] <= max_latency_ms and row["disk_mb"] <= max_disk_mb]
    return max(fits, key=lambda row: row["accuracy"])["model"] if fits else None


@exercise("""
    fits = [row for row in rows if row["latency_b1_ms"] <= max_latency_ms and row["disk_mb"] <= max_disk_mb]
    return max(fits, key=lambda row: row["accuracy"])["model"] if fits else None
    """, "pick_model")
def pick_model(fn: Callable[..., str | None]) -> None:
    """Check `fn(rows, max_latency_ms, max_disk_mb)` returns the most accurate model within both budgets."""
    inf = float("inf")
    cases = [((inf, inf), "With no constraint, take the most accurate."),
             ((20.0, 100.0), "A 20 ms latency budget rules out C and D; B is the most accurate left."),
             ((10.0, 20.0), "B fits exactly (10 ms, 20 MB): a budget is a maximum, so equal to it fits."),
             ((100.0, 10.0), "A 10 MB size budget (a mobile app) rules out B and D; C beats A and E."),
             ((5.0, 0.8), "Only E fits 5 ms and 0.8 MB."),
             ((1.0, 100.0), "Nothing runs in 1 ms: say so with None rather than break the budget.")]
    for order in _ORDERS[:2]:
        rows = [dict(_CANDIDATES[i]) for i in order if _CANDIDATES[i]["model"] != "F"]  # no ties on accuracy
        for (latency, disk), why in cases:
            want, got = _pick(rows, latency, disk), call_on_copies(fn, rows, latency, disk)
            if isinstance(got, dict):
                hint = "Return the model's name, not its row."
            else:
                hint = (f"First keep what fits both budgets (a budget is a maximum), then the most accurate of those; "
                        f"see {_BUDGET_SECTION}.")
            expect(got == want, f"{why} (max_latency_ms={latency}, max_disk_mb={disk})", want, got, hint)
    rng = unseen_rng("pick_model")
    rows = [row for row in _random_rows(rng, 10) if row["model"] != "m9"]  # no duplicate: no ties on accuracy
    for _ in range(6):
        latency, disk = float(rng.uniform(1, 120)), float(rng.uniform(1, 600))
        expect_unseen(call_on_copies(fn, rows, latency, disk, shown=False) == _pick(rows, latency, disk),
                      "other models and other budgets: the answer is not the most accurate model within both "
                      "budgets (or None).", "Use both budgets you are given, and every row.")
    passed("the most accurate model that fits the budget, and None when nothing does.")
