"""Lessons 04's and 05's recipes, defined once, and the fine-tuned classifiers built with them, trained once per profile.

`TextRecipe` and `ImageRecipe` hold what lessons 04 and 05 found works, sized by the profile: lesson 04 trains
every layer of BERT with AdamW, warm-up and linear decay on the head and tail of each text; lesson 05 trains a new
head on the frozen ImageNet backbone, then unfreezes its top with a low learning rate, BatchNorm in inference
mode. The lessons read their knobs from them, and `kitlib.run_recipe` / `python -m kitlib finetune` train with
them, so the three cannot drift apart.

Lessons 06 to 10 need a fine-tuned text and image classifier to choose, compress, tune, export and
scale. They rebuild them with the recipes lessons 04 and 05 teach (a pre-trained backbone from the
hub registry, frozen, with a new head), train them once per profile, and cache them as `.keras`.
Each model takes raw inputs: strings for text, [0, 1] float images for vision.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import keras
import numpy as np

from kitlib import _fs, evaluate, integrity, progress, runtime
from kitlib.data import loaders
from kitlib.models import heads, hub

RECIPE = 4  # bump when the training below changes: 2 = seeded head, early stopping; 3 = text: mean of the token vectors;
# 4 = text length and image size read from TextRecipe / ImageRecipe (gpu text: 512 word pieces, was 256)
CLASSIFIER_BATCH = 32  # the cached text classifier's batches (its head trains on frozen features)
LEARNING_RATE = 1e-2  # Adam's, for the head on cached features (early stopping keeps it from overfitting)
MAX_EPOCHS = 100  # at most; early stopping usually ends sooner
PATIENCE = 10  # epochs without a better held-out loss before the head stops
MIN_TRAIN = 10  # training examples the head needs at least
CHECKSUM = "model_file"  # the note's record of the .keras file's size and sha256 (kitlib.integrity)


@dataclasses.dataclass(frozen=True)
class TextRecipe:
    """Lesson 04's winner: every layer fine-tuned, AdamW with warm-up and linear decay, head-and-tail texts."""

    seq_length: int  # word pieces per text, [CLS] and [SEP] included
    head_tokens: int  # the first `head_tokens` word pieces are kept, the rest of the window filled from the end
    batch_size: int
    peak_learning_rate: float  # AdamW's, reached after the warm-up; BERT's paper: 2e-5 to 5e-5 for BERT-base
    max_epochs: int  # at most: the epochs are chosen on the validation split (early stopping, best weights kept)
    max_examples: int | None  # training examples used at most (None: all); `kitlib finetune --max-examples`
    evaluations_per_epoch: int = 1  # validation scores per pass over the training data (early stopping's grain)
    warmup_fraction: float = 0.1  # of the training steps
    weight_decay: float = 0.01  # AdamW's, not on biases and LayerNorm
    patience: int = 1  # evaluations without a lower validation loss before training stops
    trainable: str = "everything"  # lesson 04's strategy comparison: everything beats the frozen encoder and the top

    @classmethod
    def for_profile(cls, cfg: runtime.Config | runtime.Sizes) -> "TextRecipe":
        """The sizes of the smoke, cpu or gpu profile (lesson 04's knobs)."""
        return cls(seq_length=cfg.pick(smoke=32, cpu=128, gpu=512), head_tokens=cfg.pick(smoke=8, cpu=32, gpu=128),
                   batch_size=cfg.pick(smoke=16, cpu=16, gpu=32),
                   peak_learning_rate=cfg.pick(smoke=2e-4, cpu=6e-5, gpu=3e-5),
                   max_epochs=cfg.pick(smoke=2, cpu=3, gpu=4), max_examples=cfg.pick(smoke=240, cpu=4_000, gpu=None),
                   evaluations_per_epoch=cfg.pick(smoke=1, cpu=2, gpu=2))

    def steps(self, n_examples: int) -> int:
        """Training steps of `max_epochs` passes over `n_examples`: the length of the learning-rate schedule."""
        return math.ceil(n_examples / self.batch_size) * self.max_epochs

    def optimizer(self, n_examples: int) -> keras.optimizers.AdamW:
        """AdamW warming up to the peak over `warmup_fraction` of the steps, then decaying linearly to 0."""
        steps = self.steps(n_examples)
        schedule = WarmupLinearDecay(self.peak_learning_rate, max(1, round(self.warmup_fraction * steps)), steps)
        optimizer = keras.optimizers.AdamW(schedule, weight_decay=self.weight_decay)
        optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
        return optimizer


@dataclasses.dataclass(frozen=True)
class ImageRecipe:
    """Lesson 05's winner: a new head on the frozen backbone, then its top unfrozen with a low learning rate."""

    image_size: int
    batch_size: int
    head_epochs: int  # lesson 05's head on augmented photos; the recipe's head stops early on cached features
    fine_tune_epochs: int  # at most: chosen on the validation split (early stopping, best weights kept)
    unfreeze_top: int  # trainable backbone variables unfrozen, counted from the top
    head_learning_rate: float = 1e-3
    fine_tune_learning_rate: float = 2e-5  # about 50x lower: nudge the pre-trained weights, do not overwrite them
    weight_decay: float = 1e-4
    patience: int = 1
    scratch_epochs: int = 12  # at most, for the small CNN from scratch it is measured against
    max_examples: int | None = None

    @classmethod
    def for_profile(cls, cfg: runtime.Config | runtime.Sizes) -> "ImageRecipe":
        """The sizes of the smoke, cpu or gpu profile (lesson 05's knobs)."""
        return cls(image_size=cfg.pick(smoke=96, cpu=160, gpu=224), batch_size=32,
                   head_epochs=cfg.pick(smoke=2, cpu=4, gpu=5), fine_tune_epochs=cfg.pick(smoke=1, cpu=3, gpu=5),
                   unfreeze_top=cfg.pick(smoke=12, cpu=30, gpu=60), scratch_epochs=cfg.pick(smoke=3, cpu=12, gpu=30),
                   max_examples=cfg.pick(smoke=400, cpu=None, gpu=None))

    def optimizer(self) -> keras.optimizers.AdamW:
        """AdamW at the fine-tuning learning rate."""
        return keras.optimizers.AdamW(self.fine_tune_learning_rate, weight_decay=self.weight_decay)


@keras.saving.register_keras_serializable(package="kitlib")
class WarmupLinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """A learning rate rising linearly from 0 to `peak` at `warmup_steps`, then falling linearly to 0 at `total_steps`."""

    def __init__(self, peak: float, warmup_steps: int, total_steps: int) -> None:
        self.peak, self.warmup_steps, self.total_steps = float(peak), int(warmup_steps), int(total_steps)

    def __call__(self, step: Any) -> Any:
        """The rate at optimizer step `step` (an integer tensor inside a compiled function)."""
        step = keras.ops.cast(step, "float32")
        warmup = self.peak * step / max(self.warmup_steps, 1)
        decay = self.peak * keras.ops.maximum(0.0, (self.total_steps - step)
                                              / max(self.total_steps - self.warmup_steps, 1))
        return keras.ops.where(step < self.warmup_steps, warmup, decay)

    def get_config(self) -> dict[str, Any]:
        """The three numbers that define it."""
        return {"peak": self.peak, "warmup_steps": self.warmup_steps, "total_steps": self.total_steps}


def _path(kind: str, cfg: runtime.Config) -> Path:
    """Where the fine-tuned `kind` model of this profile is cached (a new recipe version never loads an old model)."""
    return cfg.cache_dir / "finetuned" / f"{kind}-{cfg.profile}-recipe{RECIPE}.keras"


def _save(model: keras.Model, path: Path, info: dict[str, Any]) -> None:
    """Save atomically (a half-written .keras never appears), then its JSON note, which records the file's checksum.

    The note is written last: a .keras without one (its writer was stopped between the two) is trained again.
    """
    with _fs.staged_file(path) as tmp:
        model.save(tmp)
    note = {**info, CHECKSUM: integrity.describe(path)}
    _fs.write_atomically(path.with_suffix(".json"), json.dumps(note, indent=1, sort_keys=True))


def _cached(path: Path) -> tuple[keras.Model | None, dict[str, Any], str | None]:
    """(model, note, None) from a sound cache entry; (None, {}, what is wrong) for a missing, half-written or damaged one."""
    if not path.exists():
        return None, {}, None
    try:
        info = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None, {}, f"{path.with_suffix('.json').name} is missing (its writer was stopped before the note)"
    except (OSError, ValueError) as exc:
        return None, {}, f"{path.with_suffix('.json').name} cannot be read ({exc})"
    damage = integrity.file_problem(path, info.pop(CHECKSUM, None) if isinstance(info, dict) else None)
    if damage:
        return None, {}, damage
    import kitlib.models.hub  # noqa: F401  (registers kitlib's layers for safe deserialisation)

    try:
        return keras.saving.load_model(path), info, None
    except Exception as exc:  # its bytes are the ones written: the model itself does not load here
        raise integrity.DamagedEntry(f"The cached fine-tuned model {path} has the checksum it was written with but "
                                     f"does not load ({type(exc).__name__}: {exc}). "
                                     f"{integrity.clear_advice(path)}") from exc


def text_model(cfg: runtime.Config, seq_length: int, n_classes: int = 2, head_tokens: int | None = None,
               trim: bool = False) -> tuple[keras.Model, hub.ResolvedModel]:
    """Lesson 04's model: strings -> BERT preprocessor -> frozen encoder -> mean of the token vectors -> head.

    `head_tokens` keeps each text's head and tail; `trim` cuts each batch to its longest text (`BertPreprocessor`).
    """
    bert = hub.resolve_model("bert_en_uncased", cfg)
    inputs = keras.Input(shape=(), dtype="string", name="text")
    packed = hub.BertPreprocessor(bert.handles["preprocessor"], seq_length=seq_length, head_tokens=head_tokens,
                                  trim=trim, name="preprocessor")(inputs)
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


def require_training_examples(count: int) -> None:
    """Refuse fewer than MIN_TRAIN training examples before any training: the head holds a fifth of them out."""
    if count < MIN_TRAIN:
        raise ValueError(f"The head needs at least {MIN_TRAIN} training examples (got {count}): a fifth of them is "
                         "held out to decide when to stop. Add examples (a few per class more).")


def _fit_head(model: keras.Model, train: Any, evaluate_on: Any, max_epochs: int,
              seed: int) -> tuple[float, keras.callbacks.History]:
    """Run the frozen backbone once, train the head on its features: (accuracy on `evaluate_on`, the head's history)."""
    return _fit_head_outputs(model, train, evaluate_on, max_epochs, seed)[:2]


def _fit_head_outputs(model: keras.Model, train: Any, evaluate_on: Any, max_epochs: int,
                      seed: int) -> tuple[float, keras.callbacks.History, np.ndarray]:
    """`_fit_head`, plus the head's outputs on `evaluate_on` (for a paired race).

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
    require_training_examples(len(labels["train"]))
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
    accuracy = float(head.evaluate(features["evaluate_on"], labels["evaluate_on"], verbose=0)[1])
    return accuracy, history, head.predict(features["evaluate_on"], verbose=0)


def split_sizes(kind: str, cfg: runtime.Config) -> dict[str, int | None]:
    """The training and validation sizes the `kind` classifier of this profile is fitted on; None: every example.

    Its own knob, not the profile's data sizes (`runtime.Sizes`): lessons 07 and 09 wait for this classifier the
    first time, so it trains a head on a few thousand examples and validates on a few hundred.
    """
    if kind == "text":
        return {"train_size": cfg.pick(smoke=256, cpu=2000, gpu=None), "val_size": cfg.pick(smoke=128, cpu=500, gpu=2500)}
    return {"train_size": cfg.pick(smoke=200, cpu=None, gpu=None), "val_size": cfg.pick(smoke=100, cpu=500, gpu=500)}


def _train(kind: str, cfg: runtime.Config) -> tuple[keras.Model, dict[str, Any]]:
    """Train the `kind` classifier of this profile: (model, its note: data, backbone, validation accuracy, time)."""
    with evaluate.stopwatch() as timer, progress.working(f"training the {kind} classifier (once per profile)"):
        if kind == "text":
            seq_length = TextRecipe.for_profile(cfg).seq_length
            data = loaders.load_text("imdb", cfg, batch_size=CLASSIFIER_BATCH, verbose=False, **split_sizes(kind, cfg))
            model, backbone = text_model(cfg, seq_length)
            extra = {"seq_length": seq_length}
        else:
            image_size = ImageRecipe.for_profile(cfg).image_size
            data = loaders.load_images("cats_and_dogs", cfg, image_size=image_size, verbose=False,
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
        model, info, damage = _cached(path)
        if model is not None:
            info["source"] = f"cached fine-tuned model {path}"
        else:
            if damage:
                progress.note(f"the cached fine-tuned model {path} failed its check ({damage}): training it again")
            model, info = _train(kind, cfg)
            _save(model, path, info)
            info["source"] = f"fine-tuned now ({info['train_seconds']:.0f} s) and cached in {path}"
    if verbose:
        print(f"{kind} classifier: {info['backbone']} + head, {info['dataset']}, "
              f"validation accuracy {info['val_accuracy']:.1%}\n  {info['source']}")
    return model, info


def train_frozen_head(model: keras.Model, train: Any, evaluate_on: Any, epochs: int = MAX_EPOCHS,
                      seed: int = 42, *, probabilities: bool = False) -> float | tuple[float, np.ndarray]:
    """The feature-caching recipe for any frozen-backbone model with a layer named "head" (lessons 06 to 08).

    Runs the frozen part once over `train` and `evaluate_on` (batched (input, label) pipelines that do not
    reshuffle), trains the head on the cached features for at most `epochs` epochs, stopping early on a
    seeded fifth of `train` held out, and returns its accuracy on `evaluate_on`, which the head never trains
    or stops on: pass a test split for an honest score. With `probabilities`, returns (accuracy, the model's
    output on `evaluate_on`) so the model can be raced (`kitlib.race`) without running the backbone again.
    """
    if probabilities:
        accuracy, _, outputs = _fit_head_outputs(model, train, evaluate_on, epochs, seed)
        return accuracy, outputs
    return _train_head(model, train, evaluate_on, epochs, seed)
