"""Metric reports and the results records that lessons write and later lessons read."""

from __future__ import annotations

import datetime
import json
import os
import platform
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from kitlib import runtime

RESULTS_FILE = "results.jsonl"
RECORD_KEYS = ("lesson", "metric", "profile", "dataset", "model", "machine", "date")  # text fields


def _labels(y_true: Sequence[int], y_pred: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Both label sequences as int arrays of one shape; a clear error when they do not pair up."""
    y_true, y_pred = np.asarray(y_true, dtype=int), np.asarray(y_pred, dtype=int)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true has shape {y_true.shape} but y_pred has {y_pred.shape}; pass one label per example.")
    return y_true, y_pred


def confusion_matrix(y_true: Sequence[int], y_pred: Sequence[int], n_classes: int | None = None) -> np.ndarray:
    """Counts of (true class, predicted class) pairs, rows the truth (lessons 02, 05).

    `sklearn.metrics.confusion_matrix` with every class of `n_classes` listed, even one that never occurs.
    """
    from sklearn import metrics

    y_true, y_pred = _labels(y_true, y_pred)
    n = n_classes or int(max(y_true.max(initial=0), y_pred.max(initial=0)) + 1)
    labels = np.concatenate([y_true.ravel(), y_pred.ravel()])
    outside = np.unique(labels[(labels < 0) | (labels >= n)])
    if outside.size:
        raise ValueError(f"Labels must be class indices 0..{n - 1}; found {outside[:5].tolist()}. "
                         "Pass integer class indices (argmax of the probabilities), and n_classes if given.")
    return metrics.confusion_matrix(y_true, y_pred, labels=np.arange(n))


class Report(dict):
    """scikit-learn's classification report as a dictionary that prints as scikit-learn's own text table."""

    def __init__(self, scores: dict[str, Any], text: str) -> None:
        super().__init__(scores)
        self.text = text

    def __str__(self) -> str:
        return self.text


def classification_report(y_true: Sequence[int], y_pred: Sequence[int], class_names: Sequence[str]) -> Report:
    """Accuracy plus per-class, macro and weighted precision, recall, f1-score and support (lessons 02, 04, 05).

    scikit-learn's dictionary, as `sklearn.metrics.classification_report(..., output_dict=True)` returns it,
    with every class listed and 0.0 (not a warning) where a class is never predicted; `print(report)` shows
    the table scikit-learn prints for the same arguments.
    """
    from sklearn import metrics

    y_true, y_pred = _labels(y_true, y_pred)
    arguments = {"labels": np.arange(len(class_names)), "target_names": list(class_names), "zero_division": 0.0}
    return Report(metrics.classification_report(y_true, y_pred, output_dict=True, **arguments),
                  metrics.classification_report(y_true, y_pred, digits=3, **arguments))


def project_2d(vectors: np.ndarray) -> np.ndarray:
    """Project vectors onto their first two principal components (PCA by SVD)."""
    centered = np.asarray(vectors, dtype=np.float64) - np.mean(vectors, axis=0)
    _, _, components = np.linalg.svd(centered, full_matrices=False)
    return centered @ components[:2].T


@contextmanager
def stopwatch() -> Iterator[dict[str, float]]:
    """Time a block: `with stopwatch() as t: ...` then read `t["seconds"]`."""
    timing = {"seconds": 0.0}
    start = time.perf_counter()
    try:
        yield timing
    finally:
        timing["seconds"] = time.perf_counter() - start


def machine() -> str:
    """A short description of this machine for results tables (CPU model where Linux says it)."""
    cpuinfo = Path("/proc/cpuinfo")
    names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
             if line.startswith("model name")] if cpuinfo.exists() else []
    cpu = names[0] if names else platform.processor() or platform.machine()
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()}"


def record_result(
    cfg: runtime.Config,
    lesson: str,
    metric: str,
    value: float,
    *,
    dataset: str,
    model: str,
    seconds: float,
    n_test: int | None = None,
) -> None:
    """Append one result (metric, value, profile, dataset, model, seconds) to the results file."""
    record = {
        "lesson": lesson,
        "metric": metric,
        "value": float(value),
        "profile": cfg.profile,
        "dataset": dataset,
        "model": model,
        "seconds": round(float(seconds), 1),
        "n_test": n_test,
        "device": cfg.device,
        "machine": machine(),
        "date": datetime.date.today().isoformat(),
    }
    cfg.results_dir.mkdir(parents=True, exist_ok=True)
    with open(cfg.results_dir / RESULTS_FILE, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")


def load_results(results_dir: Path | None = None, profile: str | None = None) -> list[dict[str, Any]]:
    """All recorded results (optionally of one profile), oldest first."""
    path = (results_dir or runtime.results_dir()) / RESULTS_FILE
    if not path.exists():
        return []
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            float(record["value"]), float(record["seconds"])
            if not all(isinstance(record[key], str) for key in RECORD_KEYS):
                raise TypeError("a field is not text")
        except (ValueError, TypeError, KeyError) as exc:
            print(f"Skipping line {number} of {path}: not a result record ({type(exc).__name__}: {exc}).",
                  file=sys.stderr)
            continue
        records.append(record)
    return [r for r in records if profile is None or r["profile"] == profile]


def newest(records: list[dict[str, Any]], keys: Sequence[str] = ("lesson", "metric", "profile", "model")
           ) -> list[dict[str, Any]]:
    """The newest record per combination of `keys`, in the order each combination first appears."""
    found: dict[tuple, dict[str, Any]] = {}
    for record in records:
        found[tuple(record.get(key) for key in keys)] = record
    return list(found.values())


def latest_result(lesson: str, metric: str, profile: str, results_dir: Path | None = None) -> dict[str, Any] | None:
    """The newest record of a lesson's metric in a profile, or None if the lesson has not run."""
    found = [r for r in load_results(results_dir, profile) if r["lesson"] == lesson and r["metric"] == metric]
    return found[-1] if found else None


def one_line(text: Any) -> str:
    """A value's text with every run of whitespace, newlines included, as one space."""
    return " ".join(str(text).split())


def render_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table: the one renderer for results, measures and race tables (cells on one line, '|' escaped)."""
    def line(cells: Sequence[Any]) -> str:
        return "| " + " | ".join(one_line(cell).replace("|", "\\|") for cell in cells) + " |"

    wrong = [len(row) for row in rows if len(row) != len(header)]
    if wrong:
        raise ValueError(f"Every row needs {len(header)} cells, one per column; a row has {wrong[0]}.")
    return "\n".join([line(header), "|" + " --- |" * len(header), *(line(row) for row in rows)])


def results_table(records: list[dict[str, Any]], value: Callable[[str, float], str] | None = None) -> str:
    """A Markdown table of the newest record per (lesson, metric, profile, model); `value(metric, number)` formats."""
    header = ["lesson", "profile", "dataset", "model", "metric", "value", "test examples", "time (s)", "machine",
              "date"]
    rows = [[r["lesson"], r["profile"], r["dataset"], r["model"], r["metric"],
             value(r["metric"], r["value"]) if value else f"{r['value']:.4f}",
             r.get("n_test") or "-", f"{r['seconds']:.0f}", r["machine"], r["date"]]
            for r in sorted(newest(records), key=lambda r: (r["lesson"], r["profile"], r["model"]))]
    return render_table(header, rows)
