"""kitlib: the plumbing of the Keras pre-training and fine-tuning kit, so the notebooks can teach.

This facade is the only thing a lesson imports. `import kitlib` is light: each name below loads its module
(and TensorFlow, Matplotlib or scikit-learn with it) on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# facade name -> "module:attribute" (attribute omitted: the same name).
_NAMES: dict[str, str] = {
    # runtime (lesson 00)
    "PROFILES": "kitlib.runtime", "Config": "kitlib.runtime", "setup": "kitlib.runtime",
    "precision_scope": "kitlib.runtime",
    "split_cpu": "kitlib.runtime", "quiet_native_stderr": "kitlib.runtime",
    # data (lessons 01, 03, 05, 12)
    "ImageData": "kitlib.data.containers", "TextData": "kitlib.data.containers", "load_images": "kitlib.data.loaders",
    "load_text": "kitlib.data.loaders", "load_unlabelled_text": "kitlib.data.loaders",
    "example_data": "kitlib.data.examples",
    # models (lessons 03-09, 12)
    "HubLayer": "kitlib.models.hub", "BertPreprocessor": "kitlib.models.hub", "resolve_model": "kitlib.models.hub",
    "window_texts": "kitlib.models.hub",
    "head_and_tail": "kitlib.models.textmodels", "mean_pooled_classifier": "kitlib.models.textmodels",
    "minilm_dir": "kitlib.models.textmodels", "save_encoder": "kitlib.models.textmodels",
    "save_preprocessor": "kitlib.models.textmodels",
    "mobilenet_v2_imagenet": "kitlib.models.standins", "imagenet_top_k": "kitlib.models.standins:top_k",
    "shared_classifier": "kitlib.models.finetuned:classifier", "split_sizes": "kitlib.models.finetuned",
    "train_frozen_head": "kitlib.models.finetuned", "TextRecipe": "kitlib.models.finetuned",
    "ImageRecipe": "kitlib.models.finetuned",
    "classical_baseline": "kitlib.models.classical",
    "RecipeSettings": "kitlib.models.recipe:Settings", "run_recipe": "kitlib.models.recipe:run",
    "export_recipe": "kitlib.models.recipe:export", "class_probabilities": "kitlib.models.recipe:probabilities",
    "memory_estimate": "kitlib.models.memory:recipe_estimate",
    # evaluating, recording, measuring (every lesson)
    "classification_report": "kitlib.evaluate", "confusion_matrix": "kitlib.evaluate",
    "latest_result": "kitlib.evaluate", "load_results": "kitlib.evaluate",
    "project_2d": "kitlib.evaluate", "record_result": "kitlib.evaluate", "results_table": "kitlib.evaluate",
    "stopwatch": "kitlib.evaluate", "render_table": "kitlib.evaluate",
    "race": "kitlib.racing", "Budget": "kitlib.racing",
    "measure_model": "kitlib.measure:measure", "measures_table": "kitlib.measure:format_table",
    "gzip_bytes": "kitlib.measure", "latency_ms": "kitlib.measure", "model_latency_ms": "kitlib.measure",
    "payload": "kitlib.measure",
    "matmul_gflops": "kitlib.throughput", "bf16_hardware": "kitlib.throughput",
    "trial_lines": "kitlib.progress", "tolerance": "kitlib.checks.core",
    # compression (lesson 07)
    "MagnitudePruning": "kitlib.compress", "layers_of": "kitlib.compress", "prunable_kernels": "kitlib.compress",
    "quantize_int8": "kitlib.compress",
    "sparsity": "kitlib.compress",
    # serving (lessons 07, 09)
    "ModelServer": "kitlib.serving", "VersionedModel": "kitlib.serving",
    "export_version": "kitlib.serving", "rest_predict": "kitlib.serving:predict",
    "tflite_convert": "kitlib.serving.lite:convert", "tflite_runner": "kitlib.serving.lite:runner",
    # plots
    "plot_confusion_matrix": "kitlib.plots", "plot_embedding_2d": "kitlib.plots", "plot_history": "kitlib.plots",
    "plot_label_efficiency": "kitlib.plots", "plot_pipeline": "kitlib.plots", "show_images": "kitlib.plots",
    "plot_masking": "kitlib.plots", "masking_kind": "kitlib.plots", "plot_attention_masks": "kitlib.plots",
    "plot_weight_histograms": "kitlib.plots", "plot_all_reduce": "kitlib.plots",
    "plot_bert_windows": "kitlib.plots", "plot_variable_strips": "kitlib.plots", "plot_trainable_layers": "kitlib.plots", "weight_snapshot": "kitlib.plots", "plot_weight_change": "kitlib.plots",
}
# namespaces: the exercise checks (one module per lesson), TensorBoard logs (lesson 02), a local cluster (lesson 10)
_MODULES = {"checks": "kitlib.checks", "runlogs": "kitlib.runlogs", "cluster": "kitlib.cluster"}

__all__ = sorted({*_NAMES, *_MODULES})


def __getattr__(name: str) -> Any:
    """Load a facade name's module on first use and cache the name here."""
    if name in _MODULES:
        value = importlib.import_module(_MODULES[name])
    elif name in _NAMES:
        module, _, attribute = _NAMES[name].partition(":")
        value = getattr(importlib.import_module(module), attribute or name)
    else:
        raise AttributeError(f"module 'kitlib' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The facade's names, for tab completion."""
    return sorted(set(globals()) | set(__all__))
