"""Fine-tuned classifiers for the lessons after 04 and 05: their recipes, trained once per profile and cached.

Lessons 06 to 10 need a fine-tuned text and image classifier to choose, compress, tune, export and
scale. They rebuild them with the recipes lessons 04 and 05 teach (a pre-trained backbone from the
hub registry, frozen, with a new head), train them once per profile, and cache them as `.keras`.
Each model takes raw inputs: strings for text, [0, 1] float images for vision.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import keras
import numpy as np

from kitlib import _fs, evaluate, progress, runtime
from kitlib.data import datasets
from kitlib.models import heads, hub

RECIPE = 3  # bump when the training below changes: 2 = seeded head, early stopping; 3 = text: mean of the token vectors
LEARNING_RATE = 1e-2  # Adam's, for the head on cached features (early stopping keeps it from overfitting)
MAX_EPOCHS = 100  # at most; early stopping usually ends sooner
PATIENCE = 10  # epochs without a better held-out loss before the head stops


def _path(kind: str, cfg: runtime.Config) -> Path:
    """Where the fine-tuned `kind` model of this profile is cached (a new recipe version never loads an old model)."""
    return cfg.cache_dir / "finetuned" / f"{kind}-{cfg.profile}-recipe{RECIPE}.keras"


def _save(model: keras.Model, path: Path, info: dict[str, Any]) -> None:
    """Save atomically (a half-written .keras never appears), with a JSON note beside it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".keras", dir=path.parent)
    os.close(fd)
    try:
        model.save(tmp)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    path.with_suffix(".json").write_text(json.dumps(info, indent=1, sort_keys=True))


def text_model(cfg: runtime.Config, seq_length: int, n_classes: int = 2) -> tuple[keras.Model, hub.ResolvedModel]:
    """Lesson 04's model: strings -> BERT preprocessor -> frozen encoder -> mean of the token vectors -> head."""
    bert = hub.resolve_model("bert_en_uncased", cfg)
    inputs = keras.Input(shape=(), dtype="string", name="text")
    packed = hub.BertPreprocessor(bert.handles["preprocessor"], seq_length=seq_length, name="preprocessor")(inputs)
    encoder = hub.HubLayer(bert.handles["encoder"], trainable=False, output_key="sequence_output", name="encoder")
    outputs = heads.mean_pooled(encoder(packed), packed["input_mask"], n_classes, 0.1, cfg.seed)
    return keras.Model(inputs, outputs, name="bert_sentiment" if n_classes == 2 else "bert_classifier"), bert


def image_model(cfg: runtime.Config, image_size: int, n_classes: int = 2) -> tuple[keras.Model, hub.ResolvedModel]:
    """Lesson 05's transfer model: [0, 1] images -> frozen ImageNet backbone (inference mode) -> head."""
    backbone = hub.resolve_model("resnet_v2_50", cfg)
    inputs = keras.Input((image_size, image_size, 3), name="image")
    features = hub.HubLayer(backbone.handles["feature_vector"], trainable=False, inference_only=True,
                            name="backbone")(inputs)
    head = heads.head(features.shape[-1], n_classes, 0.2, cfg.seed)
    name = "pets_classifier" if n_classes == 2 else "image_classifier"
    return keras.Model(inputs, head(features), name=name), backbone


def _passes(x: np.ndarray, y: np.ndarray, batch_size: int, passes: int, rng: np.random.Generator) -> Any:
    """`passes` epochs of (x, y) batches as one `tf.data` pipeline, each epoch in a new order drawn from `rng` alone."""
    import tensorflow as tf

    orders = np.stack([rng.permutation(len(x)) for _ in range(passes)])
    return (tf.data.Dataset.from_tensor_slices(orders)
            .flat_map(lambda order: tf.data.Dataset.from_tensor_slices(order).batch(batch_size))
            .map(lambda rows: (tf.gather(x, rows), tf.gather(y, rows))))


def _train_head(model: keras.Model, train: Any, evaluate_on: Any, max_epochs: int, seed: int) -> float:
    """Run the frozen backbone once, train the head on its features, return its accuracy on `evaluate_on`."""
    return _fit_head(model, train, evaluate_on, max_epochs, seed)[0]


def _fit_head(model: keras.Model, train: Any, evaluate_on: Any, max_epochs: int,
              seed: int) -> tuple[float, keras.callbacks.History]:
    """Run the frozen backbone once, train the head on its features: (accuracy on `evaluate_on`, the head's history).

    The head stops when the loss on a seeded fifth of `train` (held out from training) has not improved for
    `PATIENCE` epochs, and keeps its best weights; `evaluate_on` plays no part in training, so its score is
    honest. Hold-out and batch order come from `seed` alone. `train` must not reshuffle between passes:
    features and labels are read in two passes.
    """
    head = model.get_layer("head")
    backbone = keras.Model(model.inputs, head.input)
    splits = {"train": train, "evaluate_on": evaluate_on}
    labels = {name: np.concatenate([np.asarray(y) for _, y in ds] or [np.zeros(0)]).astype("float32")
              for name, ds in splits.items()}
    if len(labels["train"]) < 10:
        raise ValueError(f"The head needs at least 10 training examples (got {len(labels['train'])}): "
                         "a fifth of them is held out to decide when to stop.")
    features = {name: backbone.predict(ds.map(lambda x, y: x), verbose=0) for name, ds in splits.items()}
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(labels["train"]))
    held_out, fit_on = order[:len(order) // 5], order[len(order) // 5:]
    head.compile(optimizer=keras.optimizers.Adam(LEARNING_RATE), loss=heads.loss_for(heads.classes_of(model)),
                 metrics=["accuracy"])
    # fit's own shuffling would draw from the global random state; these batches are ordered by `rng` alone, and fit
    # reads the epochs from one pipeline (given steps_per_epoch, Keras keeps its iterator from epoch to epoch).
    history = head.fit(_passes(features["train"][fit_on], labels["train"][fit_on], 64, max_epochs, rng),
                       epochs=max_epochs, steps_per_epoch=-(-len(fit_on) // 64), shuffle=False, verbose=0,
                       validation_data=(features["train"][held_out], labels["train"][held_out]),
                       callbacks=[keras.callbacks.EarlyStopping(patience=PATIENCE, restore_best_weights=True)])
    return float(head.evaluate(features["evaluate_on"], labels["evaluate_on"], verbose=0)[1]), history


def split_sizes(kind: str, cfg: runtime.Config) -> dict[str, int | None]:
    """The training and validation sizes the `kind` classifier of this profile is fitted on; None: every example."""
    if kind == "text":
        return {"train_size": cfg.pick(smoke=256, cpu=2000, gpu=None), "val_size": cfg.pick(smoke=128, cpu=500, gpu=2500)}
    return {"train_size": cfg.pick(smoke=200, cpu=None, gpu=None), "val_size": cfg.pick(smoke=100, cpu=500, gpu=500)}


def _train(kind: str, cfg: runtime.Config) -> tuple[keras.Model, dict[str, Any]]:
    """Train the `kind` classifier of this profile: (model, its note: data, backbone, validation accuracy, time)."""
    with evaluate.stopwatch() as timer, progress.working(f"training the {kind} classifier (once per profile)"):
        if kind == "text":
            seq_length = cfg.pick(smoke=32, cpu=128, gpu=256)
            data = datasets.load_text("imdb", cfg, batch_size=32, verbose=False, **split_sizes(kind, cfg))
            model, backbone = text_model(cfg, seq_length)
            extra = {"seq_length": seq_length}
        else:
            image_size = cfg.pick(smoke=96, cpu=160, gpu=224)
            data = datasets.load_images("cats_and_dogs", cfg, image_size=image_size, verbose=False,
                                        **split_sizes(kind, cfg))
            model, backbone = image_model(cfg, image_size)
            extra = {"image_size": image_size, "class_names": list(data.class_names)}
        accuracy = _train_head(model, data.dataset("train", shuffle=False), data.val, MAX_EPOCHS, cfg.seed)
    return model, {"kind": kind, "dataset": data.name, "backbone": backbone.title, "backbone_source": backbone.source,
                   "val_accuracy": accuracy, "recipe": RECIPE, "train_seconds": round(timer["seconds"], 1),
                   "profile": cfg.profile, **extra}


def classifier(kind: str, cfg: runtime.Config, verbose: bool = True) -> tuple[keras.Model, dict[str, Any]]:
    """The fine-tuned "text" or "image" classifier of this profile: loaded from the cache, else trained now.

    It computes in float32 under every precision policy: lessons 07 and 09 quantise it and convert it to TFLite,
    which have no float16 kernels, and one cached model serves every policy.
    """
    if kind not in ("text", "image"):
        raise ValueError(f"Unknown classifier kind {kind!r}: choose 'text' or 'image'.")
    path = _path(kind, cfg)
    with runtime.precision_scope("float32"), _fs.one_at_a_time(path):  # a second kernel waits for the first
        if path.exists():
            import kitlib.models.hub  # noqa: F401  (registers kitlib's layers for safe deserialisation)

            model, info = keras.saving.load_model(path), json.loads(path.with_suffix(".json").read_text())
            info["source"] = f"cached fine-tuned model {path}"
        else:
            model, info = _train(kind, cfg)
            _save(model, path, info)
            info["source"] = f"fine-tuned now ({info['train_seconds']:.0f} s) and cached in {path}"
    if verbose:
        print(f"{kind} classifier: {info['backbone']} + head, {info['dataset']}, "
              f"validation accuracy {info['val_accuracy']:.1%}\n  {info['source']}")
    return model, info


def train_frozen_head(model: keras.Model, train: Any, evaluate_on: Any, epochs: int = MAX_EPOCHS,
                      seed: int = 42) -> float:
    """The feature-caching recipe for any frozen-backbone model with a layer named "head" (lessons 06 to 08).

    Runs the frozen part once over `train` and `evaluate_on` (batched (input, label) pipelines that do not
    reshuffle), trains the head on the cached features for at most `epochs` epochs, stopping early on a
    seeded fifth of `train` held out, and returns its accuracy on `evaluate_on`, which the head never trains
    or stops on: pass a test split for an honest score.
    """
    return _train_head(model, train, evaluate_on, epochs, seed)
