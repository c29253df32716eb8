"""Writing SavedModels in TF Hub's interfaces, quietly: what kitlib.models.hub.HubLayer loads back as a Keras 3 layer.

Lesson 03 exports its own BERT this way (kitlib.models.textmodels), and the offline stand-ins are exported with
it (kitlib.models.standins).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence


def save(obj: Any, folder: Path | str) -> Path:
    """`tf.saved_model.save`, without TF's INFO lines ("Assets written to ..."), which read like errors in a lesson."""
    import tensorflow as tf

    logger = tf.get_logger()
    level = logger.level
    logger.setLevel("ERROR")
    try:
        tf.saved_model.save(obj, str(folder))
    finally:
        logger.setLevel(level)
    return Path(folder)


def save_reusable(module: Any, input_spec: Any, folder: Path | str, variables: Sequence[Any],
                  trainable_variables: Sequence[Any]) -> Path:
    """Save `module.__call__(inputs, training)` as a TF Hub Reusable SavedModel in `folder`.

    The interface (https://www.tensorflow.org/hub/reusable_saved_models): `__call__` traced for `training`
    True and False (Keras 3 layers need a Python bool), and the lists `variables` (all of them, input to
    output: Keras 3 layers are no tf.Modules, so pass them explicitly, dropout seed states included),
    `trainable_variables` and `regularization_losses`.
    """
    import tensorflow as tf

    for training in (True, False):
        module.__call__.get_concrete_function(input_spec, training=training)
    root = tf.train.Checkpoint(module=module)
    root.__call__ = module.__call__
    root.variables = list(variables)
    root.trainable_variables = list(trainable_variables)
    root.regularization_losses = []
    return save(root, folder)
