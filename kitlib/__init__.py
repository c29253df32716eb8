"""kitlib: the plumbing of the Keras pre-training and fine-tuning kit, so the notebooks can teach."""

from kitlib import checks
from kitlib.datasets import TextData, load_text
from kitlib.evaluate import (
    classification_report,
    confusion_matrix,
    format_report,
    latest_result,
    load_results,
    project_2d,
    record_result,
    results_table,
    stopwatch,
)
from kitlib.plots import plot_confusion_matrix, plot_embedding_2d, plot_history, plot_pipeline
from kitlib.runtime import PROFILES, Config, setup

__version__ = "0.1.0"

__all__ = [
    "PROFILES",
    "Config",
    "TextData",
    "checks",
    "classification_report",
    "confusion_matrix",
    "format_report",
    "latest_result",
    "load_results",
    "load_text",
    "plot_confusion_matrix",
    "plot_embedding_2d",
    "plot_history",
    "plot_pipeline",
    "project_2d",
    "record_result",
    "results_table",
    "setup",
    "stopwatch",
]
