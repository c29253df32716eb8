"""Lesson 12's recipe on any labelled data: lesson 04's (text) or 05's (images), frozen, then fine-tuned, then exported.

`run(data, cfg)` takes a `TextData` or `ImageData` from `kitlib.load_text` / `kitlib.load_images` (your own file
or folders, any number of classes), first trains the model to beat without pre-training (lesson 01's bag of
embeddings, or a small CNN from scratch), then trains a new head on the frozen backbone, unfreezes the top of the backbone
and fine-tunes it with a low learning rate (BatchNorm stays in inference mode for images), and predicts the test
split. `export(run, folder)` writes it the way lesson 09 does: a `.keras` file and a SavedModel whose serving
signature takes raw strings or encoded image bytes and returns the class probabilities and the class names.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import keras
import numpy as np

from kitlib import evaluate, runtime
from kitlib.data import datasets
from kitlib.models import finetuned, heads


@dataclasses.dataclass
class Settings:
    """The knobs of the recipe, sized by the profile (`Settings.for_profile`)."""

    seq_length: int = 128  # word pieces per text
    image_size: int = 160
    head_epochs: int = finetuned.MAX_EPOCHS  # at most: the head stops early on held-out training data
    fine_tune_epochs: int = 2
    unfreeze_top: int = 20  # trainable backbone variables unfrozen, counted from the top
    fine_tune_learning_rate: float = 2e-5  # far below the head's: nudge the pre-trained weights
    baseline_epochs: int = 20  # at most, for the model without pre-training (stops early on the validation split)

    @classmethod
    def for_profile(cls, cfg: runtime.Config) -> "Settings":
        """The sizes of the smoke, cpu or gpu profile."""
        return cls(seq_length=cfg.pick(smoke=32, cpu=64, gpu=256), image_size=cfg.pick(smoke=64, cpu=160, gpu=224),
                   fine_tune_epochs=cfg.pick(smoke=1, cpu=2, gpu=3), unfreeze_top=cfg.pick(smoke=4, cpu=20, gpu=40),
                   fine_tune_learning_rate=cfg.pick(smoke=1e-4, cpu=5e-5, gpu=3e-5),
                   baseline_epochs=cfg.pick(smoke=3, cpu=20, gpu=30))


@dataclasses.dataclass
class Run:
    """What `run` returns: the fine-tuned model, both stages' histories, accuracies and test probabilities."""

    model: keras.Model
    task: str
    class_names: tuple[str, ...]
    settings: Settings
    backbone: str
    head_history: keras.callbacks.History
    fine_tune_history: keras.callbacks.History
    frozen_accuracy: float  # test accuracy of the frozen backbone + head
    baseline: str  # the model without pre-training: a bag of embeddings (text) or a small CNN (images)
    baseline_accuracy: float  # its test accuracy
    probabilities: np.ndarray  # (n_test, k) after fine-tuning
    y_test: np.ndarray
    seconds: dict[str, float]

    @property
    def predictions(self) -> np.ndarray:
        """The predicted class index of every test example."""
        return self.probabilities.argmax(axis=1)

    @property
    def accuracy(self) -> float:
        """Test accuracy after fine-tuning."""
        return float((self.predictions == self.y_test).mean())


def probabilities(model: keras.Model, inputs: Any) -> np.ndarray:
    """Class probabilities (n, k) for k classes, also from a one-unit sigmoid model (then k = 2)."""
    return np.asarray(heads.probabilities(model.predict(inputs, verbose=0)), dtype="float64")


def baseline_model(data: datasets.LabelledSplits, seed: int) -> tuple[str, keras.Model]:
    """The model to beat, without pre-training: lesson 01's bag of embeddings, or lesson 05's small CNN from scratch."""
    k = len(data.class_names)
    if isinstance(data, datasets.ImageData):
        size = data.image_size
        layers = [keras.Input((size, size, 3))]
        for i, filters in enumerate((16, 32, 64)):
            layers += [keras.layers.Conv2D(filters, 3, activation="relu",
                                           kernel_initializer=keras.initializers.HeUniform(seed + i)),
                       keras.layers.MaxPooling2D()]
        layers.append(keras.layers.GlobalAveragePooling2D())
        name = "small CNN from scratch"
    else:
        import tensorflow as tf

        vectorize = keras.layers.TextVectorization(max_tokens=20_000, output_sequence_length=256)
        vectorize.adapt(tf.data.Dataset.from_tensor_slices(data.texts("train")).batch(512))
        layers = [keras.Input((), dtype="string"), vectorize,
                  keras.layers.Embedding(vectorize.vocabulary_size(), 64, mask_zero=True,
                                         embeddings_initializer=keras.initializers.RandomUniform(-0.05, 0.05, seed)),
                  keras.layers.GlobalAveragePooling1D()]
        name = "bag of embeddings"
    layers += [keras.layers.Dropout(0.3, seed=seed), heads.output_layer(k, seed)]
    model = keras.Sequential(layers, name="baseline")
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=heads.loss_for(k), metrics=["accuracy"])
    return name, model


def run(data: datasets.LabelledSplits, cfg: runtime.Config, settings: Settings | None = None,
        verbose: bool = True) -> Run:
    """A baseline without pre-training, then the frozen backbone + new head, then the top of the backbone fine-tuned."""
    settings = settings or Settings.for_profile(cfg)
    k = len(data.class_names)
    task = "image" if isinstance(data, datasets.ImageData) else "text"
    say = print if verbose else (lambda *_: None)
    train, test = data.dataset("train", shuffle=False), data.dataset("test", shuffle=False)
    seconds = {}
    with evaluate.stopwatch() as timer:
        baseline, model = baseline_model(data, cfg.seed)
        say(f"stage 0: {baseline}, no pre-training, up to {settings.baseline_epochs} epochs")
        model.fit(data.train, validation_data=data.val, epochs=settings.baseline_epochs, verbose=0,
                  callbacks=[keras.callbacks.EarlyStopping(patience=3, restore_best_weights=True)])
        baseline_accuracy = float((probabilities(model, test.map(lambda x, y: x)).argmax(axis=1)
                                   == data.labels("test")).mean())
    seconds["baseline"] = timer["seconds"]
    say(f"  {baseline}: {baseline_accuracy:.1%} test accuracy ({seconds['baseline']:.0f} s)")
    if task == "image":
        model, backbone = finetuned.image_model(cfg, data.image_size, k)
        layer = model.get_layer("backbone")
    else:
        model, backbone = finetuned.text_model(cfg, settings.seq_length, k)
        layer = model.get_layer("encoder")
    say(f"stage 1: {backbone.title} frozen, a new head for {k} classes ({heads.loss_for(k)})")
    with evaluate.stopwatch() as timer:
        frozen_accuracy, head_history = finetuned._fit_head(model, train, test, settings.head_epochs, cfg.seed)
    seconds["head"] = timer["seconds"]
    say(f"  frozen backbone + head: {frozen_accuracy:.1%} test accuracy ({seconds['head']:.0f} s, "
        f"{len(head_history.epoch)} epochs)")
    layer.trainable = True  # to count the variables the backbone lets train; unfreeze_top freezes all but the top
    unfrozen = layer.unfreeze_top(min(settings.unfreeze_top, len(layer.trainable_weights)))
    say(f"stage 2: top {len(unfrozen)} backbone variables unfrozen, learning rate {settings.fine_tune_learning_rate:g}")
    model.compile(optimizer=keras.optimizers.AdamW(settings.fine_tune_learning_rate, weight_decay=1e-4),
                  loss=heads.loss_for(k), metrics=["accuracy"])
    with evaluate.stopwatch() as timer:
        fine_tune_history = model.fit(data.train, validation_data=data.val, epochs=settings.fine_tune_epochs,
                                      verbose=2 if verbose else 0)
    seconds["fine_tune"] = timer["seconds"]
    with evaluate.stopwatch() as timer:
        probs = probabilities(model, test.map(lambda x, y: x))
    seconds["test"] = timer["seconds"]
    result = Run(model, task, tuple(data.class_names), settings, backbone.title, head_history, fine_tune_history,
                 frozen_accuracy, baseline, baseline_accuracy, probs, data.labels("test"), seconds)
    say(f"  fine-tuned: {result.accuracy:.1%} test accuracy ({seconds['fine_tune']:.0f} s)")
    return result


def decode_images(encoded: Any, size: int) -> Any:
    """A batch of encoded JPEG/PNG bytes -> float32 images in [0, 1] of shape (batch, size, size, 3) (lesson 09)."""
    import tensorflow as tf

    def one(image_bytes: tf.Tensor) -> tf.Tensor:
        image = tf.io.decode_image(image_bytes, channels=3, expand_animations=False)
        return tf.image.resize(image, (size, size)) / 255.0

    return tf.map_fn(one, encoded, fn_output_signature=tf.float32)


def serving_function(model: keras.Model, class_names: tuple[str, ...], task: str) -> Any:
    """strings (text) or encoded image bytes -> {"probabilities": (n, k), "classes": (n, k) names, "label": (n,)}."""
    import tensorflow as tf

    names = tf.constant(list(class_names))

    def serve(inputs: tf.Tensor) -> dict[str, tf.Tensor]:
        p = model(decode_images(inputs, model.inputs[0].shape[1]) if task == "image" else inputs, training=False)
        p = heads.probabilities(p)  # float32 for clients, whatever the model's precision policy
        return {"probabilities": p, "classes": tf.tile(names[None], [tf.shape(p)[0], 1]),
                "label": tf.gather(names, tf.argmax(p, axis=1))}

    return serve


def export(result: Run, folder: Path | str) -> dict[str, Path]:
    """Write `model.keras` and the SavedModel `serving/` (signature "serving_default") into `folder`, atomically."""
    import tensorflow as tf

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"keras": folder / "model.keras", "serving": folder / "serving"}
    staging = Path(tempfile.mkdtemp(prefix=".export.", dir=folder))
    try:
        result.model.save(staging / "model.keras")
        archive = keras.export.ExportArchive()
        archive.track(result.model)
        input_name = "text" if result.task == "text" else "image_bytes"
        archive.add_endpoint("serve", serving_function(result.model, result.class_names, result.task),
                             [tf.TensorSpec((None,), tf.string, name=input_name)])
        archive.write_out(str(staging / "serving"), verbose=False)
        for name, path in paths.items():
            if path.is_dir():
                shutil.rmtree(path)
            os.replace(staging / path.name, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return paths


def write_report(result: Run, data: datasets.LabelledSplits, folder: Path | str) -> Path:
    """A short Markdown report in `folder`: data, classes, sizes, per-class scores, confusion matrix (PNG)."""
    import matplotlib

    matplotlib.use("Agg")  # noqa: E402  (the command line has no display)
    import matplotlib.pyplot as plt

    from kitlib import plots

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    matrix = evaluate.confusion_matrix(result.y_test, result.predictions, len(result.class_names))
    plots.plot_confusion_matrix(matrix, result.class_names, title=f"{data.name}: test split")
    plt.savefig(folder / "confusion_matrix.png", dpi=100)
    plt.close("all")
    scores = evaluate.classification_report(result.y_test, result.predictions, result.class_names)
    sizes = ", ".join(f"{split} {len(data.labels(split)):,}" for split in ("train", "val", "test"))
    lines = [f"# Fine-tuned {result.task} classifier: {data.name}", "",
             f"- data: {data.title}", f"- source: {data.source}", f"- classes ({len(result.class_names)}): "
             + ", ".join(result.class_names), f"- sizes: {sizes}", f"- backbone: {result.backbone}",
             f"- {result.baseline}, no pre-training: {result.baseline_accuracy:.1%} test accuracy "
             f"({result.seconds['baseline']:.0f} s)",
             f"- frozen backbone + head: {result.frozen_accuracy:.1%} test accuracy ({result.seconds['head']:.0f} s)",
             f"- fine-tuned (top {result.settings.unfreeze_top} backbone variables, learning rate "
             f"{result.settings.fine_tune_learning_rate:g}, {result.settings.fine_tune_epochs} epoch(s)): "
             f"{result.accuracy:.1%} test accuracy ({result.seconds['fine_tune']:.0f} s)", "",
             "## Per-class scores (test split)", "", "| class | precision | recall | F1 | support |",
             "|---|---:|---:|---:|---:|"]
    lines += [f"| {name} | {scores[name]['precision']:.3f} | {scores[name]['recall']:.3f} | "
              f"{scores[name]['f1-score']:.3f} | {int(scores[name]['support'])} |" for name in result.class_names]
    lines += ["", f"Macro F1 {scores['macro avg']['f1-score']:.3f}, accuracy {scores['accuracy']:.3f}.", "",
              "## Confusion matrix", "", "![confusion matrix](confusion_matrix.png)", ""]
    path = folder / "report.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
