"""A Keras 3 layer around TF Hub SavedModels, and the registry of pretrained models with offline stand-ins.

`tensorflow_hub.KerasLayer` is a tf_keras (Keras 2) layer and cannot live in a Keras 3 model
(tensorflow/hub#903). `HubLayer` loads the SavedModel itself, shares its variables with Keras as
Keras variables (so optimizers, `trainable=False` and `.keras` saving see them), and passes
`training` through so BatchNorm and Dropout behave in `fit` and `predict`. Under a mixed precision policy it
casts its inputs to the dtypes the SavedModel was traced for (float32 for TF Hub's models) and its outputs back to
the policy's compute dtype, so a float32 SavedModel runs inside a float16 or bfloat16 model.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from kitlib import _fs, integrity, progress, runtime
from kitlib.models import standins, textmodels


class UnknownModelError(ValueError):
    """The model name is not in the registry."""


class ModelUnavailableError(FileNotFoundError):
    """Neither the online handle nor the offline stand-in can be had."""


def _load(handle: str) -> Any:
    """Load a SavedModel from a local folder or a TF Hub / Kaggle handle (TF Text's ops registered first)."""
    try:
        import tensorflow_text  # noqa: F401  (BERT preprocessors use its ops; importing registers them)
    except ImportError:
        pass
    try:
        if Path(handle).expanduser().is_dir():
            return tf.saved_model.load(str(Path(handle).expanduser()))
        import tensorflow_hub as hub

        return hub.load(handle)
    except RuntimeError as exc:
        if "TFText" not in str(exc):
            raise
        major_minor = ".".join(tf.__version__.split(".")[:2])
        raise RuntimeError(
            f"{handle} uses TensorFlow Text ops, which are not installed. Install the version matching your "
            f"TensorFlow {tf.__version__} (on Colab too): pip install 'tensorflow-text=={major_minor}.*', then "
            "restart the kernel."
        ) from exc


def _keras_name(variable: tf.Variable) -> str:
    """A Keras-safe variable name: no ':0' suffix (Adam's slot names break on it), no slashes."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", variable.name.split(":")[0])


def _share(variable: tf.Variable, trainable: bool) -> keras.Variable:
    """A Keras variable backed by the SavedModel's own tf.Variable, so updates reach its functions.

    Keras 3's TensorFlow backend keeps a tf.Variable passed as `initializer` as its storage (no copy).
    """
    return keras.Variable(initializer=variable, dtype=variable.dtype.name, trainable=trainable,
                          name=_keras_name(variable))


@keras.saving.register_keras_serializable(package="kitlib")
class HubLayer(keras.layers.Layer):
    """A TF Hub SavedModel as a Keras 3 layer: fine-tunes, freezes, passes `training`, saves as `.keras`.

    Lesson 03 loads its own BERT with it; lesson 04 says why it exists (`tensorflow_hub.KerasLayer` is Keras 2).

    `inference_only=True` runs the SavedModel in inference mode even while its weights train: BatchNorm
    keeps its pre-trained statistics and dropout stays off, the usual way to fine-tune image backbones.
    """

    def __init__(
        self,
        handle: str,
        trainable: bool = False,
        output_key: str | None = None,
        method: str | None = None,
        arguments: dict[str, Any] | None = None,
        inference_only: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(trainable=True, **kwargs)  # set for real below, once the variables exist
        self.handle = str(handle)
        self.output_key = output_key
        self.method = method
        self.arguments = dict(arguments or {})
        self.inference_only = inference_only
        module = _load(self.handle)
        trainable_ids = {id(v) for v in getattr(module, "trainable_variables", [])}
        self._hub_variables = [_share(v, id(v) in trainable_ids) for v in getattr(module, "variables", [])]
        self._module = module
        self._fn = getattr(module, method) if method else module
        self._accepts_training = method is None and _takes_training(module)
        self._signature = _input_signature(self._fn)
        # Keras freezes by flipping the flags of tracked variables, and skips `self.trainable = True` when
        # already True: so track them while trainable, then set the wanted value.
        self.trainable = trainable
        self.built = True

    def unfreeze_top(self, n: int) -> list[keras.Variable]:
        """Make the layer trainable with only its top `n` trainable variables learning (lesson 04); returns those `n`.

        "Top" is the end of the SavedModel's variable list, which runs from input to output for models built
        with Keras. Variables the SavedModel marks as not trainable (BatchNorm statistics) stay frozen.
        """
        self.trainable = False  # Keras skips `trainable = True` on a trainable layer, so pass through False:
        self.trainable = True  # every variable the SavedModel lets train is trainable again
        candidates = list(self.trainable_weights)
        if not 0 <= n <= len(candidates):
            raise ValueError(f"unfreeze_top({n}): {self.handle} has {len(candidates)} trainable variables; "
                             f"pass 0 to {len(candidates)}.")
        for i, variable in enumerate(candidates):
            variable.trainable = i >= len(candidates) - n
        return candidates[len(candidates) - n:]

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        """Run the SavedModel; `training` reaches it as a Python bool when it takes one.

        Floating inputs are cast to the SavedModel's own dtypes, floating outputs to the layer's compute dtype.
        """
        inputs = _cast_to(inputs, self._signature)
        if self._accepts_training:
            mode = bool(training) and self.trainable and not self.inference_only
            outputs = self._fn(inputs, training=mode, **self.arguments)
        else:
            outputs = self._fn(inputs, **self.arguments)
        if self.output_key is not None:
            if not isinstance(outputs, dict) or self.output_key not in outputs:
                keys = sorted(outputs) if isinstance(outputs, dict) else type(outputs).__name__
                raise KeyError(f"output_key {self.output_key!r} is not an output of {self.handle}; it returns {keys}.")
            outputs = outputs[self.output_key]
        return tf.nest.map_structure(
            lambda t: tf.cast(t, self.compute_dtype) if isinstance(t, tf.Tensor) and t.dtype.is_floating else t, outputs)

    def get_config(self) -> dict[str, Any]:
        """The handle and options: enough to load the SavedModel again; weights travel separately."""
        config = super().get_config()
        config.update(handle=self.handle, output_key=self.output_key, method=self.method, arguments=self.arguments,
                      inference_only=self.inference_only)
        return config


@keras.saving.register_keras_serializable(package="kitlib")
class BertPreprocessor(keras.layers.Layer):
    """A TF Hub BERT preprocessor as one layer: raw strings in, `tokenize` + `bert_pack_inputs` to `seq_length` out.

    With `head_tokens`, a long text keeps its first `head_tokens` word pieces and fills the rest of the window from
    its end (lesson 04's head and tail) instead of losing its end. With `trim`, each batch is cut to its longest
    text (at most `seq_length`): short sentences then cost a fraction of a full window. Lesson 06 uses it, and
    `window_texts` writes each window back as text; kitlib.models.textmodels writes the SavedModels it loads.
    """

    def __init__(self, handle: str, seq_length: int = 128, head_tokens: int | None = None, trim: bool = False,
                 **kwargs: Any) -> None:
        super().__init__(**{**kwargs, "trainable": False})
        self.handle = str(handle)
        self.seq_length = int(seq_length)
        self.head_tokens = None if head_tokens is None else int(head_tokens)
        self.trim = bool(trim)
        if self.seq_length < 2:
            raise ValueError(f"seq_length={seq_length} leaves no room for [CLS] and [SEP]: pass 2 or more word pieces "
                             "(BERT's usual lengths are 128 to 512).")
        if self.head_tokens is not None and not 0 <= self.head_tokens <= self.seq_length - 2:
            raise ValueError(f"head_tokens={head_tokens} must be between 0 and seq_length - 2 = {self.seq_length - 2} "
                             "(the word pieces kept from the start; [CLS] and [SEP] take two).")
        self._module = _load(self.handle)
        self.built = True

    def tokenize(self, strings: Any) -> tf.RaggedTensor:
        """The word pieces of each string: a ragged [batch, pieces] tensor of ids."""
        return self._module.tokenize(tf.reshape(strings, [-1])).merge_dims(-2, -1)

    def window(self, tokens: tf.RaggedTensor) -> tf.RaggedTensor:
        """The pieces of each row of `tokenize`'s output that the packed window holds ([CLS] and [SEP] take two):
        its head and tail with `head_tokens`, else its start."""
        keep = self.seq_length - 2
        return textmodels.head_and_tail(tokens, keep, keep if self.head_tokens is None else self.head_tokens)

    def call(self, strings: Any) -> dict[str, Any]:
        """Word pieces of each string, packed as [CLS] ... [SEP], trimmed and padded to `seq_length`."""
        packed = self._module.bert_pack_inputs([self.window(self.tokenize(strings))], seq_length=self.seq_length)
        if self.trim:
            longest = tf.maximum(tf.reduce_max(tf.reduce_sum(packed["input_mask"], axis=1)), 2)
            return {key: value[:, :longest] for key, value in packed.items()}
        return {key: tf.ensure_shape(value, [None, self.seq_length]) for key, value in packed.items()}

    def compute_output_spec(self, strings: Any) -> dict[str, keras.KerasTensor]:
        """Three int32 tensors of shape (batch, seq_length), or (batch, None) when trimmed to each batch."""
        length = None if self.trim else self.seq_length
        return {key: keras.KerasTensor((strings.shape[0], length), dtype="int32")
                for key in ("input_word_ids", "input_mask", "input_type_ids")}

    def get_config(self) -> dict[str, Any]:
        """The handle, the packed length, the head-and-tail split and whether batches are trimmed."""
        return {**super().get_config(), "handle": self.handle, "seq_length": self.seq_length,
                "head_tokens": self.head_tokens, "trim": self.trim}


def vocabulary(handle: str) -> list[str]:
    """The word pieces of a BERT preprocessor, in id order, from its SavedModel's `assets/vocab.txt` (TF Hub's
    preprocessors carry one there, and so do kitlib.models.textmodels' exports)."""
    folder = Path(handle).expanduser()
    if not folder.is_dir():
        import tensorflow_hub as hub

        folder = Path(hub.resolve(handle))
    path = folder / "assets" / textmodels.VOCABULARY_FILE
    if not path.is_file():
        raise FileNotFoundError(f"The preprocessor {handle} has no {path.relative_to(folder)}: export it again with "
                                "kitlib.save_preprocessor, which writes one.")
    return path.read_bytes().decode("utf-8").removesuffix("\n").split("\n")  # a piece a line, as the table reads it


def window_texts(preprocessor: BertPreprocessor, texts: Any) -> np.ndarray:
    """The part of each text that `preprocessor`'s window holds, its word pieces written back as words (lesson 06).

    A model that reads these strings reads what the encoder behind `preprocessor` reads: they tokenize back to the
    same window (a head cut inside a word keeps that word's first pieces, which tokenize as they were), with two
    exceptions. An unknown word ([UNK]) has no text, so it is left out. A tail cut inside a word starts at the next
    whole word, since a word's later pieces ("##ing") would tokenize as a word of their own. The words are BERT's:
    lower-cased for an uncased vocabulary, punctuation a word of its own ("didn ' t").
    """
    pieces = vocabulary(preprocessor.handle)
    tokens = preprocessor.tokenize(tf.constant(np.asarray(texts), dtype=tf.string))
    cut = (tokens.row_lengths() > preprocessor.seq_length - 2).numpy()
    head = preprocessor.seq_length - 2 if preprocessor.head_tokens is None else preprocessor.head_tokens
    written = []
    for ids, was_cut in zip(preprocessor.window(tokens).to_list(), cut):
        split = head if was_cut else len(ids)
        tail = [pieces[i] for i in ids[split:]]
        while tail and tail[0].startswith("##"):
            tail.pop(0)
        written.append(" ".join(_words([pieces[i] for i in ids[:split]]) + _words(tail)))
    return np.array(written, dtype=object)


def _words(pieces: list[str]) -> list[str]:
    """Word pieces glued back into words ("##" continues the word before it), unknown words ([UNK]) left out."""
    words: list[str] = []
    for piece in pieces:
        if piece == textmodels.UNKNOWN_PIECE:
            continue
        if piece.startswith("##") and words:
            words[-1] += piece[2:]
        else:
            words.append(piece)
    return words


def _input_signature(fn: Any) -> Any:
    """The TensorSpecs of a SavedModel function's first argument as it was traced, or None if it was not.

    `fn` is a restored function or the restored object itself, whose `__call__` is one.
    """
    concrete = getattr(fn, "concrete_functions", None) or getattr(getattr(fn, "__call__", None), "concrete_functions", None)
    args = concrete[0].structured_input_signature[0] if concrete else ()
    return args[0] if args else None


def _cast_to(inputs: Any, signature: Any) -> Any:
    """`inputs` with each floating tensor cast to the floating dtype its spec in `signature` names (else unchanged)."""
    if signature is None:
        return inputs
    try:
        tf.nest.assert_same_structure(inputs, signature)
    except (ValueError, TypeError):
        return inputs  # a structure the SavedModel was not traced for: let it say so itself

    def cast(x: Any, spec: Any) -> Any:
        wanted = getattr(spec, "dtype", None)
        if isinstance(x, tf.Tensor) and isinstance(wanted, tf.DType) and x.dtype.is_floating and wanted.is_floating \
                and x.dtype != wanted:  # ragged and other composite inputs pass as they are (they carry ids)
            return tf.cast(x, wanted)
        return x

    return tf.nest.map_structure(cast, inputs, signature)


def _takes_training(module: Any) -> bool:
    """True when the SavedModel's __call__ has a `training` parameter (TF Hub's reusable interface)."""
    function_type = getattr(getattr(module, "__call__", None), "function_type", None)
    return function_type is not None and "training" in function_type.parameters


@dataclasses.dataclass(frozen=True)
class HubModel:
    """A pretrained model by name: TF Hub handles per profile, and an offline stand-in exported locally."""

    name: str
    kind: str
    handles: dict[str, dict[str, str]]
    stand_in: standins.StandIn


MODELS: dict[str, HubModel] = {}
HANDLES = "handles.json"
# Lesson 04's keras-hub route: its KERAS_HUB_PRESET per profile (smoke, cpu, gpu); `doctor --online` checks them.
KERAS_HUB_PRESETS = ("bert_tiny_en_uncased", "bert_small_en_uncased", "bert_base_en_uncased")


def register(model: HubModel) -> HubModel:
    """Add a model to the registry (lesson modules register theirs)."""
    MODELS[model.name] = model
    return model


@dataclasses.dataclass(frozen=True)
class ResolvedModel:
    """Which handles a lesson will load, and from where."""

    name: str
    handles: dict[str, str]
    source: str
    title: str


def _export_atomically(model: HubModel, folder: Path) -> dict[str, str]:
    """Export the stand-in into a staging folder, then move it into place: never half-written."""
    # float32, as TF Hub's models are, whatever the lesson's policy
    with (runtime.precision_scope("float32"),
          progress.working(f"exporting the offline stand-in {model.stand_in.name} (once, then cached)"),
          _fs.staged_folder(folder) as staging):
        relative = model.stand_in.export(staging)
        (staging / HANDLES).write_text(json.dumps(relative, indent=1, sort_keys=True))
        integrity.record(staging)
    return relative


def resolve_model(name: str, cfg: runtime.Config) -> ResolvedModel:
    """Online TF Hub handles for the profile when the network allows, else the offline stand-in (exported once).

    Lesson 04 introduces it; `kitlib.resolve_model` is this function.
    """
    if name not in MODELS:
        raise UnknownModelError(f"Unknown model {name!r}. Known models: {', '.join(sorted(MODELS)) or 'none'}.")
    model = MODELS[name]
    if not cfg.offline and cfg.profile in model.handles and runtime.network_available():
        handles = model.handles[cfg.profile]
        return ResolvedModel(name, handles, f"TF Hub ({', '.join(handles.values())})", name)
    folder = cfg.cache_dir / "models" / model.stand_in.name
    how = "cached in"
    with _fs.one_at_a_time(folder):
        damage = integrity.problem(folder) if (folder / HANDLES).exists() else None
        if damage:
            progress.note(f"the cached stand-in {folder} failed its check ({damage}): exporting it again")
        if damage or not (folder / HANDLES).exists():
            try:
                _export_atomically(model, folder)
            except FileNotFoundError as exc:
                cached = f" The cached copy in {folder} is damaged ({damage})." if damage else ""
                raise ModelUnavailableError(
                    f"{name} needs the network (unset KITLIB_OFFLINE) or the offline pack for its stand-in "
                    f"{model.stand_in.title}: run `python -m kitlib pack`.{cached} ({exc})"
                ) from exc
            how = "exported to"
    relative = json.loads((folder / HANDLES).read_text())
    handles = {role: str(folder / sub) for role, sub in relative.items()}
    title = model.stand_in.title
    return ResolvedModel(name, handles, f"offline stand-in {title}, {how} {folder}", title)


# Every text model falls back to the MiniLM stand-in and every image model to MobileNetV2 (kitlib.models.standins).
BERT_PREPROCESS = "https://tfhub.dev/tensorflow/bert_en_uncased_preprocess/3"

register(HubModel(
    name="bert_en_uncased",
    kind="text",
    handles={
        "cpu": {"preprocessor": BERT_PREPROCESS,
                "encoder": "https://tfhub.dev/tensorflow/small_bert/bert_en_uncased_L-4_H-512_A-8/2"},
        "gpu": {"preprocessor": BERT_PREPROCESS,
                "encoder": "https://tfhub.dev/tensorflow/bert_en_uncased_L-12_H-768_A-12/4"},
    },
    stand_in=standins.MINILM,
))
register(HubModel(
    name="resnet_v2_50",
    kind="image",
    handles={profile: {"feature_vector": "https://tfhub.dev/google/imagenet/resnet_v2_50/feature_vector/5"}
             for profile in ("cpu", "gpu")},
    stand_in=standins.MOBILENET_V2,
))
# Lesson 06: more sizes to choose from when online (offline they fall back to the same stand-ins).
for _name, _encoder in (
    ("small_bert_l2_h128", "https://tfhub.dev/tensorflow/small_bert/bert_en_uncased_L-2_H-128_A-2/2"),
    ("small_bert_l4_h256", "https://tfhub.dev/tensorflow/small_bert/bert_en_uncased_L-4_H-256_A-4/2"),
    ("small_bert_l4_h512", "https://tfhub.dev/tensorflow/small_bert/bert_en_uncased_L-4_H-512_A-8/2"),
):
    register(HubModel(_name, "text", {p: {"preprocessor": BERT_PREPROCESS, "encoder": _encoder} for p in ("cpu", "gpu")},
                      standins.MINILM))
for _name, _vector in (
    ("mobilenet_v3_small", "https://tfhub.dev/google/imagenet/mobilenet_v3_small_100_224/feature_vector/5"),
    ("mobilenet_v3_large", "https://tfhub.dev/google/imagenet/mobilenet_v3_large_100_224/feature_vector/5"),
    ("efficientnet_v2_b0", "https://tfhub.dev/google/imagenet/efficientnet_v2_imagenet1k_b0/feature_vector/2"),
):
    register(HubModel(_name, "image", {p: {"feature_vector": _vector} for p in ("cpu", "gpu")}, standins.MOBILENET_V2))
del _name, _encoder, _vector
