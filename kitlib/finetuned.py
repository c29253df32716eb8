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

from kitlib import datasets, evaluate, hub, runtime


def _path(kind: str, cfg: runtime.Config) -> Path:
    """Where the fine-tuned `kind` model of this profile is cached."""
    return cfg.cache_dir / "finetuned" / f"{kind}-{cfg.profile}.keras"


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


def _head(width: int, dropout: float) -> keras.Sequential:
    """The new classification head: dropout and one sigmoid unit (float32 under mixed precision)."""
    return keras.Sequential([keras.Input((width,)), keras.layers.Dropout(dropout),
                             keras.layers.Dense(1, activation="sigmoid", dtype="float32")], name="head")


def text_model(cfg: runtime.Config, seq_length: int) -> tuple[keras.Model, hub.ResolvedModel]:
    """Lesson 04's route A: strings -> BERT preprocessor -> frozen encoder (pooled) -> sigmoid head."""
    bert = hub.resolve_model("bert_en_uncased", cfg)
    inputs = keras.Input(shape=(), dtype="string", name="text")
    packed = hub.BertPreprocessor(bert.handles["preprocessor"], seq_length=seq_length, name="preprocessor")(inputs)
    pooled = hub.HubLayer(bert.handles["encoder"], trainable=False, output_key="pooled_output", name="encoder")(packed)
    return keras.Model(inputs, _head(pooled.shape[-1], 0.1)(pooled), name="bert_sentiment"), bert


def image_model(cfg: runtime.Config, image_size: int) -> tuple[keras.Model, hub.ResolvedModel]:
    """Lesson 05's transfer model: [0, 1] images -> frozen ImageNet backbone (inference mode) -> sigmoid head."""
    backbone = hub.resolve_model("resnet_v2_50", cfg)
    inputs = keras.Input((image_size, image_size, 3), name="image")
    features = hub.HubLayer(backbone.handles["feature_vector"], trainable=False, inference_only=True,
                            name="backbone")(inputs)
    return keras.Model(inputs, _head(features.shape[-1], 0.2)(features), name="pets_classifier"), backbone


def _train_head(model: keras.Model, train: Any, val: Any, epochs: int) -> float:
    """Run the frozen backbone once, train the head on its features, return the validation accuracy.

    `train` must not reshuffle between passes: features and labels are read in two passes.
    """
    head = model.get_layer("head")
    backbone = keras.Model(model.inputs, head.input)
    features = {split: backbone.predict(ds.map(lambda x, y: x), verbose=0) for split, ds in (("train", train), ("val", val))}
    labels = {split: keras.ops.concatenate([y for _, y in ds]) for split, ds in (("train", train), ("val", val))}
    head.compile(optimizer=keras.optimizers.Adam(1e-2), loss="binary_crossentropy", metrics=["accuracy"])
    head.fit(features["train"], labels["train"], epochs=epochs, batch_size=64, verbose=0)
    return float(head.evaluate(features["val"], labels["val"], verbose=0)[1])


def split_sizes(kind: str, cfg: runtime.Config) -> dict[str, int | None]:
    """The training and validation sizes the `kind` classifier of this profile is fitted on; None: every example."""
    if kind == "text":
        return {"train_size": cfg.pick(smoke=256, cpu=2000, gpu=None), "val_size": cfg.pick(smoke=128, cpu=500, gpu=2500)}
    return {"train_size": cfg.pick(smoke=200, cpu=None, gpu=None), "val_size": cfg.pick(smoke=100, cpu=500, gpu=500)}


def classifier(kind: str, cfg: runtime.Config, verbose: bool = True) -> tuple[keras.Model, dict[str, Any]]:
    """The fine-tuned "text" or "image" classifier of this profile: loaded from the cache, else trained now."""
    if kind not in ("text", "image"):
        raise ValueError(f"Unknown classifier kind {kind!r}: choose 'text' or 'image'.")
    path = _path(kind, cfg)
    if path.exists():
        import kitlib.hub  # noqa: F401  (registers kitlib's layers for safe deserialisation)

        model, info = keras.saving.load_model(path), json.loads(path.with_suffix(".json").read_text())
        info["source"] = f"cached fine-tuned model {path}"
    else:
        with evaluate.stopwatch() as timer:
            if kind == "text":
                seq_length = cfg.pick(smoke=32, cpu=128, gpu=256)
                data = datasets.load_text("imdb", cfg, batch_size=32, verbose=False, **split_sizes(kind, cfg))
                model, backbone = text_model(cfg, seq_length)
                accuracy = _train_head(model, data.dataset("train", shuffle=False), data.val, epochs=100)
                extra = {"seq_length": seq_length}
            else:
                image_size = cfg.pick(smoke=96, cpu=160, gpu=224)
                data = datasets.load_images("cats_and_dogs", cfg, image_size=image_size, verbose=False,
                                            **split_sizes(kind, cfg))
                model, backbone = image_model(cfg, image_size)
                accuracy = _train_head(model, data.dataset("train", shuffle=False), data.val, epochs=100)
                extra = {"image_size": image_size, "class_names": list(data.class_names)}
        info = {"kind": kind, "dataset": data.name, "backbone": backbone.title, "backbone_source": backbone.source,
                "val_accuracy": accuracy, "train_seconds": round(timer["seconds"], 1), "profile": cfg.profile, **extra}
        _save(model, path, info)
        info["source"] = f"fine-tuned now ({info['train_seconds']:.0f} s) and cached in {path}"
    if verbose:
        print(f"{kind} classifier: {info['backbone']} + head, {info['dataset']}, "
              f"validation accuracy {info['val_accuracy']:.1%}\n  {info['source']}")
    return model, info


def train_frozen_head(model: keras.Model, train: Any, evaluate_on: Any, epochs: int = 100) -> float:
    """The feature-caching recipe for any frozen-backbone model with a layer named "head" (lessons 06 to 08).

    Runs the frozen part once over `train` and `evaluate_on` (batched (input, label) pipelines that do not
    reshuffle), trains the head on the cached features, and returns its accuracy on `evaluate_on`, which
    the head never trains on: pass a test split for an honest score.
    """
    return _train_head(model, train, evaluate_on, epochs)
