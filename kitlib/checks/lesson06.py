"""Lesson 06 (choosing a model): the Pareto front, the most accurate model within a budget."""

from __future__ import annotations

from typing import Callable

from kitlib.checks.core import call_on_copies, expect, passed

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


def pareto_front(fn: Callable[[list[dict]], list[str]]) -> None:
    """Check `fn(rows)` names the models no other model beats on both accuracy and latency, fastest first."""
    latency = {row["model"]: row["latency_b1_ms"] for row in _CANDIDATES}
    for order in _ORDERS:
        rows = [dict(_CANDIDATES[i]) for i in order]
        shown = [row["model"] for row in rows]
        got = call_on_copies(fn, rows)
        expect(isinstance(got, (list, tuple)), "pareto_front should return a list of model names.",
               ["A", "B", "F", "D"], type(got).__name__, "Return [row['model'] for row in front].")
        got = list(got)
        expect("C" not in got, "C is dominated: B is both faster (10 ms < 30 ms) and more accurate (0.88 > 0.85).",
               "no 'C'", got, "Drop a model when another one is at least as fast AND at least as accurate, and "
               "strictly better on one of the two.")
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
               "A, then B and F (10 ms), then D", got, "Sort the front by row['latency_b1_ms'].")
    single = list(call_on_copies(fn, [dict(_CANDIDATES[2])]))
    expect(single == ["C"], "A lone model is on its own front.", ["C"], single, "Nothing dominates it.")
    passed("the front keeps only models that are best at some trade-off, in any input order.")


def pick_model(fn: Callable[..., str | None]) -> None:
    """Check `fn(rows, max_latency_ms, max_disk_mb)` returns the most accurate model within both budgets."""
    inf = float("inf")
    cases = [((inf, inf), "D", "With no constraint, take the most accurate."),
             ((20.0, 100.0), "B", "A 20 ms latency budget rules out C and D; B is the most accurate left."),
             ((10.0, 20.0), "B", "B fits exactly (10 ms, 20 MB): a budget is a maximum, so equal to it fits."),
             ((100.0, 10.0), "C", "A 10 MB size budget (a mobile app) rules out B and D; C beats A and E."),
             ((5.0, 0.8), "E", "Only E fits 5 ms and 0.8 MB."),
             ((1.0, 100.0), None, "Nothing runs in 1 ms: say so with None rather than break the budget.")]
    for order in _ORDERS[:2]:
        rows = [dict(_CANDIDATES[i]) for i in order if _CANDIDATES[i]["model"] != "F"]  # no ties on accuracy
        for (latency, disk), want, why in cases:
            got = call_on_copies(fn, rows, latency, disk)
            if isinstance(got, dict):
                hint = "Return the row's name, row['model'], not the row itself."
            else:
                hint = ("Keep rows with latency_b1_ms <= max_latency_ms and disk_mb <= max_disk_mb (<=, not <), "
                        "then return the 'model' of the one with the highest accuracy, or None when none is left.")
            expect(got == want, f"{why} (max_latency_ms={latency}, max_disk_mb={disk})", want, got, hint)
    passed("the most accurate model that fits the budget, and None when nothing does.")
