"""Exercise checks, one module per lesson: each runs the learner's code the way the lesson then uses it, on cases
with a known answer and on cases it keeps unseen, and says what was expected, what it received and what to
study; `hint(name)` prints a fuller hint for a named exercise."""

from kitlib.checks.core import CheckFailed, call, expect, hint, passed
from kitlib.checks.lesson01 import nearest_neighbours, projector_export
from kitlib.checks.lesson02 import lstm_model, most_confident_mistakes
from kitlib.checks.lesson03 import causal_mask, mlm_targets
from kitlib.checks.lesson04 import unfreeze_top_layers, warmup_linear_decay
from kitlib.checks.lesson05 import augmentation, scratch_cnn
from kitlib.checks.lesson06 import pareto_front, pick_model
from kitlib.checks.lesson07 import distillation_loss, magnitude_mask
from kitlib.checks.lesson08 import best_so_far, grid_space, search_space
from kitlib.checks.lesson09 import decoded_images, serving_request
from kitlib.checks.lesson10 import cluster_config, learning_rate_scaling
from kitlib.checks.lesson11 import macro_f1, vgg_classifier
from kitlib.checks.lesson12 import confident_mistakes, per_class_recall

__all__ = [
    "CheckFailed", "call", "expect", "hint", "passed",
    "nearest_neighbours", "projector_export",
    "lstm_model", "most_confident_mistakes",
    "mlm_targets", "causal_mask",
    "warmup_linear_decay", "unfreeze_top_layers",
    "augmentation", "scratch_cnn",
    "pareto_front", "pick_model",
    "magnitude_mask", "distillation_loss",
    "search_space", "grid_space", "best_so_far",
    "decoded_images", "serving_request",
    "learning_rate_scaling", "cluster_config",
    "vgg_classifier", "macro_f1",
    "per_class_recall", "confident_mistakes",
]
