"""Lesson 12's recipe on any labelled data: the model to beat, lesson 04's (text) or 05's (images) winner, the exports.

`run(data, cfg)` takes a `TextData` or `ImageData` from `kitlib.load_text` / `kitlib.load_images` (your own file
or folders, any number of classes) and trains three stages on the same split:

0. the model to beat, without pre-training: a TF-IDF + logistic regression classifier for text, a small CNN from
   scratch for images;
1. a new head on the frozen pre-trained backbone (its features computed once);
2. lesson 04's or 05's winner (`kitlib.models.finetuned.TextRecipe` / `ImageRecipe`, the definitions the lessons
   read): for text every layer fine-tuned with AdamW, warm-up and linear decay on the head and tail of each text;
   for images the top of the backbone unfrozen with a low learning rate, BatchNorm in inference mode. The number
   of epochs is chosen on the validation split (early stopping, the best weights kept).

Each stage is raced on the test split against stage 0 (`kitlib.race`: a paired-bootstrap interval and a verdict). `export(run, folder)`
writes a `.keras` file and a SavedModel whose serving signature takes raw strings or encoded image bytes, and
`write_report` says how to load both in a fresh process. An output folder is written whole or not at all
(`output_folder`): staged beside it, swapped in last, never over files the kit did not write.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol, Sequence

import keras
import numpy as np

from kitlib import _fs, evaluate, racing, runtime
from kitlib.data import containers, images, owndata
from kitlib.models import classical, finetuned, heads

MARKER = ".kitlib-output.json"  # in an output folder the kit wrote: the names it wrote there


class OutputFolderError(ValueError):
    """An output folder the kit will not write into as it is; the message says why and what to do."""


@dataclasses.dataclass(frozen=True)
class Settings:
    """The recipe: lesson 04's text recipe and lesson 05's image recipe, sized by the profile (`for_profile`)."""

    text: finetuned.TextRecipe
    image: finetuned.ImageRecipe

    @classmethod
    def for_profile(cls, cfg: runtime.Config, seq_length: int | None = None,
                    max_examples: int | None = None) -> "Settings":
        """The profile's recipes; `seq_length` and `max_examples` (0: every example) trade time for accuracy."""
        text, image = finetuned.TextRecipe.for_profile(cfg), finetuned.ImageRecipe.for_profile(cfg)
        if seq_length is not None:
            if seq_length < 8:
                raise ValueError(f"seq_length={seq_length} is too short for a text: pass 8 or more word pieces "
                                 f"(the {cfg.profile} profile uses {text.seq_length}).")
            head = min(text.head_tokens, (seq_length - 2) // 4)  # the profile's share of the window for the head
            text = dataclasses.replace(text, seq_length=seq_length, head_tokens=head)
        if max_examples is not None:
            if max_examples < 0:
                raise ValueError(f"max_examples={max_examples}: pass a positive number, or 0 for every example.")
            text = dataclasses.replace(text, max_examples=max_examples or None)
            image = dataclasses.replace(image, max_examples=max_examples or None)
        return cls(text, image)

    def for_task(self, task: str) -> finetuned.TextRecipe | finetuned.ImageRecipe:
        """The text or image recipe."""
        return self.text if task == "text" else self.image


class Classifier(Protocol):
    """What stage 0 returns: a fitted model with scikit-learn's `predict_proba`."""

    def predict_proba(self, examples: Any) -> np.ndarray:
        """Class probabilities (n, k)."""


@dataclasses.dataclass
class Stage:
    """One stage's test scores and cost."""

    name: str
    model: str
    probabilities: np.ndarray  # (n_test, k)
    seconds: float  # training
    examples: int  # training examples processed (examples x passes)
    epochs: int | None = None  # passes the stage trained, where it counts them

    @property
    def predictions(self) -> np.ndarray:
        """The predicted class of every test example."""
        return self.probabilities.argmax(axis=1)

    def accuracy(self, y: np.ndarray) -> float:
        """Test accuracy."""
        return float((self.predictions == y).mean())

    @property
    def rate(self) -> float:
        """Training examples per second."""
        return self.examples / max(self.seconds, 1e-9)


@dataclasses.dataclass
class Run:
    """What `run` returns: the fine-tuned model, each stage's test probabilities, histories and timings."""

    model: keras.Model
    task: str
    class_names: tuple[str, ...]
    settings: Settings
    backbone: str
    backbone_handles: dict[str, str]
    stages: list[Stage]  # stage 0 (the model to beat), 1 (frozen + head), 2 (fine-tuned)
    head_history: keras.callbacks.History
    fine_tune_history: keras.callbacks.History
    y_test: np.ndarray
    test_seconds: float  # predicting the test split with the fine-tuned model
    examples_seen: int = 0  # training examples of the run

    @property
    def probabilities(self) -> np.ndarray:
        """(n_test, k) after fine-tuning."""
        return self.stages[-1].probabilities

    @property
    def predictions(self) -> np.ndarray:
        """The predicted class index of every test example."""
        return self.probabilities.argmax(axis=1)

    @property
    def accuracy(self) -> float:
        """Test accuracy after fine-tuning."""
        return self.stages[-1].accuracy(self.y_test)

    @property
    def baseline(self) -> str:
        """The model to beat (stage 0)."""
        return self.stages[0].model

    @property
    def baseline_accuracy(self) -> float:
        """Stage 0's test accuracy."""
        return self.stages[0].accuracy(self.y_test)

    @property
    def frozen_accuracy(self) -> float:
        """Stage 1's test accuracy: the frozen backbone and its new head."""
        return self.stages[1].accuracy(self.y_test)

    @property
    def seconds(self) -> dict[str, float]:
        """Training seconds of each stage, and testing."""
        return {"baseline": self.stages[0].seconds, "head": self.stages[1].seconds,
                "fine_tune": self.stages[2].seconds, "test": self.test_seconds}


def probabilities(model: keras.Model, inputs: Any) -> np.ndarray:
    """Class probabilities (n, k) for k classes, also from a one-unit sigmoid model (then k = 2)."""
    return np.asarray(heads.probabilities(model.predict(inputs, verbose=0)), dtype="float64")


def split_probabilities(model: keras.Model, data: containers.LabelledSplits, split: str) -> np.ndarray:
    """(n, k) for every example of `split` in its order; texts are predicted in batches of similar length."""
    if not isinstance(data, containers.TextData):
        return probabilities(model, data.dataset(split, shuffle=False).map(lambda x, y: x))
    batches, order = data.by_length(split, shuffle=False)
    sorted_probabilities = probabilities(model, batches.map(lambda x, y: x))
    placed = np.empty_like(sorted_probabilities)
    placed[order[0]] = sorted_probabilities
    return placed


def _batches(data: containers.LabelledSplits, split: str, batch_size: int | None = None, passes: int = 1) -> Any:
    """(example, label) batches: texts grouped by length (shuffled for training), images in their order."""
    if isinstance(data, containers.TextData):
        return data.by_length(split, batch_size, passes=passes, shuffle=split == "train")[0]
    return data.dataset(split, batch_size=batch_size, shuffle=False)


class KerasClassifier:
    """A trained Keras model behind scikit-learn's `predict_proba` (stage 0 for images)."""

    def __init__(self, model: keras.Model) -> None:
        self.model = model

    def predict_proba(self, examples: Any) -> np.ndarray:
        """Class probabilities (n, k)."""
        return probabilities(self.model, examples)


def scratch_cnn(image_size: int, n_classes: int, seed: int) -> keras.Model:
    """Lesson 05's model to beat: a small CNN from scratch (three conv/pool blocks), compiled."""
    layers: list[Any] = [keras.Input((image_size, image_size, 3))]
    for i, filters in enumerate((16, 32, 64)):
        layers += [keras.layers.Conv2D(filters, 3, activation="relu",
                                       kernel_initializer=keras.initializers.HeUniform(seed + i)),
                   keras.layers.MaxPooling2D()]
    layers += [keras.layers.GlobalAveragePooling2D(), keras.layers.Dropout(0.3, seed=seed),
               heads.output_layer(n_classes, seed)]
    model = keras.Sequential(layers, name="scratch_cnn")
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=heads.loss_for(n_classes), metrics=["accuracy"])
    return model


CLASSICAL = "TF-IDF n-grams + logistic regression (lesson 02's classical baseline)"  # stage 0 for text


def baseline(data: containers.LabelledSplits, settings: Settings, seed: int) -> tuple[str, Classifier, int]:
    """Stage 0, the model to beat without pre-training: (its name, the fitted classifier, examples it trained on).

    Text: lesson 02's classical baseline (`kitlib.classical_baseline`, n-gram range and C chosen on validation);
    images: lesson 05's small CNN from scratch under the races' early-stopping rule (`kitlib.Budget`).
    """
    n_train = len(data.labels("train"))
    if isinstance(data, containers.ImageData):
        model = scratch_cnn(data.image_size, len(data.class_names), seed)
        history = racing.Budget(settings.image.scratch_epochs, patience=3).fit(model, data.train, val=data.val)
        return "small CNN from scratch", KerasClassifier(model), n_train * len(history.epoch)
    fitted = classical.classical_baseline(data.splits["train"], data.splits["val"])
    return CLASSICAL, fitted, n_train


class EpochLines(keras.callbacks.Callback):
    """One line per evaluation: loss and accuracy on train and validation, seconds, examples per second."""

    def __init__(self, say: Callable[[str], None], total: int, examples: int) -> None:
        super().__init__()
        self.say, self.total, self.examples = say, total, examples
        self.started = time.perf_counter()

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        """Start the clock."""
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        """Print the line."""
        logs, seconds = logs or {}, time.perf_counter() - self.started
        self.say(f"  epoch {epoch + 1}/{self.total}: loss {logs.get('loss', math.nan):.3f}, "
                 f"validation loss {logs.get('val_loss', math.nan):.3f}, "
                 f"validation accuracy {logs.get('val_accuracy', math.nan):.1%} "
                 f"({seconds:.0f} s, {self.examples / max(seconds, 1e-9):.1f} examples/s)")


def _fine_tune_text(model: keras.Model, data: containers.TextData, spec: finetuned.TextRecipe,
                    say: Callable[[str], None]) -> keras.callbacks.History:
    """Lesson 04's winner: every encoder layer trains, AdamW warm-up + linear decay, epochs chosen on validation."""
    import tensorflow as tf

    n_train = len(data.labels("train"))
    model.get_layer("encoder").trainable = True
    k = len(data.class_names)
    model.compile(optimizer=spec.optimizer(n_train), loss=heads.loss_for(k), metrics=["accuracy"])
    steps = math.ceil(math.ceil(n_train / spec.batch_size) / spec.evaluations_per_epoch)
    evaluations = spec.max_epochs * spec.evaluations_per_epoch
    train = _batches(data, "train", spec.batch_size, passes=spec.max_epochs).repeat()  # little padding
    return model.fit(train.prefetch(tf.data.AUTOTUNE), epochs=evaluations, steps_per_epoch=steps,
                     validation_data=_batches(data, "val", spec.batch_size), verbose=0,
                     callbacks=[keras.callbacks.EarlyStopping(monitor="val_loss", patience=spec.patience,
                                                              restore_best_weights=True),
                                EpochLines(say, evaluations, steps * spec.batch_size)])


def _fine_tune_image(model: keras.Model, data: containers.ImageData, spec: finetuned.ImageRecipe,
                     say: Callable[[str], None]) -> keras.callbacks.History:
    """Lesson 05's winner: the top of the backbone unfrozen, AdamW at a low rate, epochs chosen on validation."""
    layer = model.get_layer("backbone")
    layer.trainable = True  # to count the variables the backbone lets train; unfreeze_top freezes all but the top
    layer.unfreeze_top(min(spec.unfreeze_top, len(layer.trainable_weights)))
    model.compile(optimizer=spec.optimizer(), loss=heads.loss_for(len(data.class_names)), metrics=["accuracy"])
    return model.fit(data.dataset("train", batch_size=spec.batch_size), epochs=spec.fine_tune_epochs, verbose=0,
                     validation_data=data.dataset("val", batch_size=spec.batch_size),
                     callbacks=[keras.callbacks.EarlyStopping(monitor="val_loss", patience=spec.patience,
                                                              restore_best_weights=True),
                                EpochLines(say, spec.fine_tune_epochs, len(data.labels("train")))])


def _require_splits(data: containers.LabelledSplits) -> None:
    """Refuse, before any training, splits too small to train, choose epochs on, or test."""
    counts = {split: len(data.labels(split)) for split in ("train", "val", "test")}
    if counts["train"] < finetuned.MIN_TRAIN or not counts["val"] or not counts["test"]:
        raise owndata.DataFileError(f"{data.name}: the recipe needs at least {finetuned.MIN_TRAIN} training examples and a non-empty validation "
                         "and test split (sizes: " + ", ".join(f"{s} {n}" for s, n in counts.items())
                         + "). Add examples (a few more per class), or give a validation or test file.")


def run(data: containers.LabelledSplits, cfg: runtime.Config, settings: Settings | None = None,
        verbose: bool = True) -> Run:
    """Stage 0 (the model to beat, `baseline`), 1 (frozen backbone + new head), 2 (lesson 04's / 05's winner), all on
    the test split."""
    settings = settings or Settings.for_profile(cfg)
    _require_splits(data)
    task = "image" if isinstance(data, containers.ImageData) else "text"
    spec = settings.for_task(task)
    k, n_train, y_test = len(data.class_names), len(data.labels("train")), data.labels("test")
    say: Callable[[str], None] = print if verbose else (lambda *_: None)
    stages = []

    say(f"stage 0: the model to beat, without pre-training ({n_train:,} training examples)")
    with evaluate.stopwatch() as timer:
        name, classifier, seen = baseline(data, settings, cfg.seed)
    stage0_probs = classifier.predict_proba(data.texts("test") if task == "text"
                                            else data.dataset("test", shuffle=False).map(lambda x, y: x))
    stages.append(Stage("0", name, np.asarray(stage0_probs, dtype="float64"), timer["seconds"], seen))
    say(f"  {name}: {stages[0].accuracy(y_test):.1%} test accuracy ({timer['seconds']:.0f} s)")

    if task == "image":
        model, backbone = finetuned.image_model(cfg, data.image_size, k)
    else:
        model, backbone = finetuned.text_model(cfg, spec.seq_length, k, head_tokens=spec.head_tokens, trim=True)
    say(f"stage 1: {backbone.title} frozen, a new head for {k} classes")
    with evaluate.stopwatch() as timer:
        _, head_history = finetuned._fit_head(model, _batches(data, "train"), _batches(data, "val"),
                                              finetuned.MAX_EPOCHS, cfg.seed)
    stages.append(Stage("1", f"{backbone.title}, frozen + new head", split_probabilities(model, data, "test"),
                        timer["seconds"], n_train, len(head_history.epoch)))
    say(f"  frozen backbone + head: {stages[1].accuracy(y_test):.1%} test accuracy ({timer['seconds']:.0f} s)")

    if task == "text":
        say(f"stage 2: every layer fine-tuned (lesson 04), AdamW peaking at {spec.peak_learning_rate:g} after "
            f"{spec.warmup_fraction:.0%} warm-up, then linear decay; up to {spec.max_epochs} epoch(s) of "
            f"{n_train:,} texts, {spec.seq_length} word pieces (head {spec.head_tokens} + tail)")
        fine_tune = _fine_tune_text
    else:
        say(f"stage 2: the top {spec.unfreeze_top} backbone variables fine-tuned (lesson 05), learning rate "
            f"{spec.fine_tune_learning_rate:g}, up to {spec.fine_tune_epochs} epoch(s)")
        fine_tune = _fine_tune_image
    with evaluate.stopwatch() as timer:
        history = fine_tune(model, data, spec, say)
    per_epoch = spec.evaluations_per_epoch if task == "text" else 1
    passes = len(history.epoch) / per_epoch
    with evaluate.stopwatch() as test_timer:
        probs = split_probabilities(model, data, "test")
    stages.append(Stage("2", f"{backbone.title}, fine-tuned", probs, timer["seconds"], round(n_train * passes),
                        math.ceil(passes)))
    say(f"  fine-tuned: {stages[2].accuracy(y_test):.1%} test accuracy ({timer['seconds']:.0f} s, "
        f"{passes:g} epoch(s), the best of them kept)")
    handles = {key: str(value) for key, value in backbone.handles.items()}
    return Run(model, task, tuple(data.class_names), settings, backbone.title, handles, stages, head_history,
               history, y_test, test_timer["seconds"], sum(stage.examples for stage in stages))


def decode_images(encoded: Any, size: int) -> Any:
    """A batch of encoded JPEG/PNG bytes -> float32 images in [0, 1] of shape (batch, size, size, 3) (lesson 09).

    The decoder the training loaders use (kitlib.data.images): 16-bit PNGs scaled, EXIF orientation applied.
    """
    return images.decode_batch(encoded, size)


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


def _folder_problem(folder: Path, force: bool) -> str | None:
    """Why `folder` must not be replaced (it holds files the kit did not write there), or None."""
    if not folder.exists() and not folder.is_symlink():
        return None
    if folder.is_symlink() or not folder.is_dir():
        return f"{folder} exists and is not a folder: choose another --out"
    entries = sorted(entry.name for entry in folder.iterdir())
    if not entries or force:
        return None
    try:
        written = set(json.loads((folder / MARKER).read_text(encoding="utf-8"))["files"])
    except (OSError, ValueError, KeyError, TypeError):
        shown = ", ".join(entries[:5]) + (" ..." if len(entries) > 5 else "")
        return (f"{folder} is not empty and was not written by the kit (it holds {shown}): choose a new or empty "
                "folder, or pass --force (force=True) to replace it whole, deleting what it holds")
    foreign = [name for name in entries if name not in written | {MARKER}]
    if foreign:
        shown = ", ".join(foreign[:5]) + (" ..." if len(foreign) > 5 else "")
        return (f"{folder} holds files the kit did not write there ({shown}): move them out, choose another "
                "folder, or pass --force (force=True) to replace it whole, deleting them")
    return None


def _overlaps(folder: Path, protected: Sequence[Path | str]) -> Path | None:
    """The first protected path (your data) that `folder` is, contains, or lies inside of."""
    target = folder.absolute().resolve()
    for path in protected:
        path = Path(path).absolute().resolve()
        if target == path or target in path.parents or path in target.parents:
            return path
    return None


@contextlib.contextmanager
def output_folder(folder: Path | str, force: bool = False, protected: Sequence[Path | str] = ()) -> Iterator[Path]:
    """A staging folder that replaces `folder` whole when the block ends well, and vanishes when it fails.

    Checked before any work: `folder` may not be or hold your data (`protected`), must be new, empty or written by
    the kit (a marker file lists what it wrote; `force` replaces it anyway), and its parent writable. One writer
    at a time: a second one is refused while the first runs. What a killed writer left beside it is cleaned.
    """
    folder = Path(folder).absolute()
    overlap = _overlaps(folder, protected)
    if overlap is not None:
        raise OutputFolderError(f"The output folder {folder} overlaps your data {overlap}: writing there could "
                                "delete it. Choose an --out outside the data.")
    problem = _folder_problem(folder, force)
    if problem:
        raise OutputFolderError(f"Refusing to write: {problem}.")
    try:
        with _fs.one_at_a_time(folder, wait=False), _fs.staged_folder(folder) as staging:
            yield staging
            problem = _folder_problem(folder, force)  # files may have appeared while the work ran
            if problem:
                raise OutputFolderError(f"Refusing to replace the output folder: {problem}. Nothing was written.")
            written = sorted(entry.name for entry in staging.iterdir())
            (staging / MARKER).write_text(json.dumps({"written_by": "kitlib", "files": written}, indent=1),
                                          encoding="utf-8")
    except BlockingIOError:
        raise OutputFolderError(f"Another run is writing {folder} now: wait for it to finish, or choose another "
                                "--out.") from None
    except OSError as exc:
        if isinstance(exc, _fs.StorageError) or not _fs.is_local_fault(exc):
            raise
        raise _fs.storage_error(exc, f"write the output folder {folder}") from exc


def write_exports(result: Run, folder: Path) -> dict[str, Path]:
    """Write `model.keras` and the SavedModel `serving/` (signature "serving_default") into `folder` as they are."""
    import tensorflow as tf

    paths = {"keras": folder / "model.keras", "serving": folder / "serving"}
    result.model.save(paths["keras"], include_optimizer=False)  # the weights; the optimizer is not needed to predict
    archive = keras.export.ExportArchive()
    archive.track(result.model)
    input_name = "text" if result.task == "text" else "image_bytes"
    archive.add_endpoint("serve", serving_function(result.model, result.class_names, result.task),
                         [tf.TensorSpec((None,), tf.string, name=input_name)])
    archive.write_out(str(paths["serving"]), verbose=False)
    return paths


def export(result: Run, folder: Path | str, force: bool = False) -> dict[str, Path]:
    """Write `model.keras` and the SavedModel `serving/` into `folder`, whole or not at all (see `output_folder`)."""
    folder = Path(folder).absolute()
    with output_folder(folder, force) as staging:
        paths = write_exports(result, staging)
    return {name: folder / path.name for name, path in paths.items()}


def loading_code(result: Run, folder: Path) -> dict[str, str]:
    """Python that loads and calls each export in a fresh process: {"keras": ..., "savedmodel": ...}."""
    keras_file, serving = str(folder / "model.keras"), str(folder / "serving")
    if result.task == "text":
        inputs = 'tf.constant(["a film I would happily watch again", "two hours I will not get back"])'
        saved_call, read = f"serve(text={inputs})", ""
        keras_call = f"model.predict({inputs}, verbose=0)"
    else:
        read = 'image_bytes = [open(path, "rb").read() for path in ["photo.jpg"]]  # your JPEG or PNG files\n'
        saved_call = "serve(image_bytes=tf.constant(image_bytes))"
        keras_call = ('model.predict(np.stack([np.asarray(Image.open(path).convert("RGB").resize((size, size))) '
                      'for path in ["photo.jpg"]]) / 255.0, verbose=0)')
    k = len(result.class_names)
    shape = (f"(n, 1): the probability of {result.class_names[1]!r}" if k == 2
             else f"(n, {k}): one column per class, in the order {list(result.class_names)!r}")
    keras_imports = "import numpy as np\nfrom PIL import Image\n" if result.task == "image" else ""
    size = f"size = {result.model.inputs[0].shape[1]}  # the model's image size\n" if result.task == "image" else ""
    keras_code = (f"import keras\n{keras_imports}import tensorflow as tf\n\nimport kitlib\n\n"
                  "# the kit's layers are the custom objects the file needs; safe_mode stays on\n"
                  "custom = {\"kitlib>HubLayer\": kitlib.HubLayer, \"kitlib>BertPreprocessor\": kitlib.BertPreprocessor}\n"
                  f"model = keras.saving.load_model({keras_file!r}, custom_objects=custom, compile=False)  "
                  f"# to predict; compile again to train on\n{size}"
                  f"probabilities = {keras_call}  # {shape}\n"
                  "print(probabilities.tolist())\n")
    saved_code = ("import tensorflow as tf\n" + ("import tensorflow_text  # noqa: F401  registers the text ops "
                                                 "(CaseFoldUTF8, WordPiece) the tokenizer needs: load fails "
                                                 "without it\n" if result.task == "text" else "")
                  + f"\nserve = tf.saved_model.load({serving!r}).signatures[\"serving_default\"]\n{read}"
                  f"out = {saved_call}\n"
                  "print([label.decode() for label in out[\"label\"].numpy()])  # the predicted classes\n"
                  "print(out[\"probabilities\"].numpy().tolist())  # one column per class, as in out[\"classes\"]\n")
    return {"keras": keras_code, "savedmodel": saved_code}


def write_report(result: Run, data: containers.LabelledSplits, folder: Path | str,
                 location: Path | str | None = None) -> Path:
    """report.md in `folder`: data, each stage against stage 0 with its interval, time, loading code, per-class scores.

    `location` is where the folder will end up (the loading code names it); by default `folder` itself.
    """
    import matplotlib

    matplotlib.use("Agg")  # noqa: E402  (the command line has no display)
    import matplotlib.pyplot as plt

    from kitlib import plots

    folder = Path(folder)
    location = Path(location or folder).absolute()
    y, names = result.y_test, result.class_names
    matrix = evaluate.confusion_matrix(y, result.predictions, len(names))
    with matplotlib.rc_context({"text.parse_math": False, "text.usetex": False}):  # labels are plain text
        plots.plot_confusion_matrix(matrix, names, title=f"{data.name}: test split")
        plt.savefig(folder / "confusion_matrix.png", dpi=100)
    plt.close("all")
    scores = evaluate.classification_report(y, result.predictions, names)
    sizes = ", ".join(f"{split} {len(data.labels(split)):,}" for split in ("train", "val", "test"))
    spec = result.settings.for_task(result.task)
    if result.task == "text":
        recipe_line = (f"every layer fine-tuned (lesson 04's winner), AdamW peaking at {spec.peak_learning_rate:g} "
                       f"after {spec.warmup_fraction:.0%} warm-up, then linear decay; {spec.seq_length} word pieces "
                       f"(the first {spec.head_tokens} and the last {spec.seq_length - 2 - spec.head_tokens}), "
                       f"batches of {spec.batch_size}")
    else:
        recipe_line = (f"the top {spec.unfreeze_top} backbone variables fine-tuned (lesson 05's winner), AdamW at "
                       f"{spec.fine_tune_learning_rate:g}, BatchNorm in inference mode")
    epochs = result.stages[-1].epochs
    lines = [f"# Fine-tuned {result.task} classifier: {data.name}", "",
             f"- data: {data.title}", f"- source: {data.source}",
             f"- classes ({len(names)}): " + ", ".join(f"`{evaluate.one_line(name)}`" for name in names), f"- sizes: {sizes}",
             f"- backbone: {result.backbone}", f"- recipe: {recipe_line}; {epochs} epoch(s) trained, the epoch with "
             "the lowest validation loss kept", "",
             f"## Stages on the test split ({len(y):,} examples)", "",
             "Each stage is raced against stage 0, the model to beat, on the same test examples (`kitlib.race`): a "
             "paired bootstrap gives the 95% interval of the difference in accuracy, and the verdict is 'wins' or "
             "'loses' only when that whole interval is above or below zero.", ""]
    base = result.stages[0]
    raced = racing.race(y, {stage.name: stage.predictions for stage in result.stages}, against=base.name)
    stages = []
    for stage in result.stages:
        d = None if stage is base else raced.difference(stage.name, base.name)
        against = ("the model to beat" if d is None else f"{d.verdict}: {100 * d.difference:+.1f} points (95% "
                   f"interval {100 * d.low:+.1f} to {100 * d.high:+.1f})")
        stages.append([stage.name, stage.model, f"{stage.accuracy(y):.1%}", against, f"{stage.seconds:.1f} s",
                       f"{stage.rate:,.1f}"])
    lines.append(evaluate.render_table(["stage", "model", "test accuracy", "against stage 0", "training time",
                                        "training examples/s"], stages))
    code = loading_code(result, location)
    lines += ["", f"Testing the fine-tuned model: {len(y):,} examples in {result.test_seconds:.1f} s "
              f"({len(y) / max(result.test_seconds, 1e-9):,.1f} examples/s).", "",
              "## Per-class scores (test split, fine-tuned)", "",
              evaluate.render_table(["class", "precision", "recall", "F1", "support"],
                                    [[name, *(f"{scores[name][key]:.3f}" for key in ("precision", "recall", "f1-score")),
                                      int(scores[name]["support"])] for name in names])]
    lines += ["", f"Macro F1 {scores['macro avg']['f1-score']:.3f}, accuracy {scores['accuracy']:.3f}.", "",
              "## Confusion matrix", "", "![confusion matrix](confusion_matrix.png)", "",
              "## Loading the exports in a fresh process", "",
              "### The SavedModel (`serving/`): TensorFlow alone", "",
              "It takes " + ("raw strings" if result.task == "text" else "the encoded bytes of JPEG or PNG files")
              + " and returns each class's probability (`probabilities`), the class names (`classes`) and the "
              "predicted class (`label`)."
              + (" Its tokenizer uses TensorFlow Text's ops, so `import tensorflow_text` must run before "
                 "`tf.saved_model.load`, or loading fails with `Op type not registered 'CaseFoldUTF8'`."
                 if result.task == "text" else ""), "", "```python", code["savedmodel"].rstrip(), "```", "",
              "### The Keras file (`model.keras`): with the kit installed", "",
              "It holds the model's layers and weights; the kit's layers are the custom objects it needs. The "
              "backbone's graph is read from the pre-trained SavedModel it was built on ("
              + ", ".join(f"`{handle}`" for handle in result.backbone_handles.values())
              + "), which must be there where you load it; the SavedModel above needs nothing else.", "",
              "```python", code["keras"].rstrip(), "```", ""]
    path = folder / "report.md"
    _fs.write_atomically(path, "\n".join(lines))
    return path
