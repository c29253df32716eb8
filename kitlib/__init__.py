"""kitlib: the plumbing of the Keras pre-training and fine-tuning kit, so the notebooks can teach."""

from kitlib import checks, cluster, runlogs
from kitlib.data.datasets import ImageData, TextData, load_images, load_text
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
from kitlib.plots import (
    plot_confusion_matrix,
    plot_embedding_2d,
    plot_history,
    plot_label_efficiency,
    plot_pipeline,
    show_images,
)
from kitlib.runtime import PROFILES, Config, setup

__version__ = "0.1.0"

_LAZY = {"HubLayer": "kitlib.models.hub", "resolve_model": "kitlib.models.hub"}


def __getattr__(name: str) -> object:
    """Import TensorFlow-heavy parts on first use, so `import kitlib` stays light until setup()."""
    if name in _LAZY:
        import importlib

        module = importlib.import_module(_LAZY[name])
        return getattr(module, name)
    raise AttributeError(f"module 'kitlib' has no attribute {name!r}")

__all__ = [
    "PROFILES",
    "Config",
    "HubLayer",
    "ImageData",
    "TextData",
    "checks",
    "cluster",
    "classification_report",
    "confusion_matrix",
    "format_report",
    "latest_result",
    "load_images",
    "load_results",
    "load_text",
    "plot_confusion_matrix",
    "plot_embedding_2d",
    "plot_history",
    "plot_label_efficiency",
    "plot_pipeline",
    "project_2d",
    "record_result",
    "resolve_model",
    "runlogs",
    "results_table",
    "setup",
    "show_images",
    "stopwatch",
]
