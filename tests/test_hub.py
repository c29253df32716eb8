"""kitlib.HubLayer on small SavedModels built here: fine-tuning, freezing, `training`, dicts, `.keras` round trip."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest
import tensorflow as tf

from kitlib import runtime
from kitlib.models import heads, hub, savedmodel, standins

SMOKE = runtime.setup("smoke", verbose=False)


def offline() -> runtime.Config:
    """The smoke profile offline, with the cache the test's environment names, and no set-up side effects (the
    precision policy a test sets stays in force)."""
    return dataclasses.replace(SMOKE, cache_dir=runtime.cache_dir(), offline=True)



class ImageLike(tf.Module):
    """A ResNet-shaped feature extractor: Dense + BatchNorm + Dropout, traced for training True and False."""

    def __init__(self) -> None:
        super().__init__()
        self.dense = keras.layers.Dense(4)
        self.norm = keras.layers.BatchNormalization()
        self.drop = keras.layers.Dropout(0.5, seed=1)
        self.dense.build((None, 3))
        self.norm.build((None, 4))

    @tf.function
    def __call__(self, x: tf.Tensor, training: bool = False) -> tf.Tensor:
        return self.drop(self.norm(self.dense(x), training=training), training=training)


def layer_variables(module: tf.Module) -> tuple[list, list]:
    """All and trainable variables of the Keras layers a module holds (Keras 3 layers are no tf.Modules)."""
    layers = [v for v in vars(module).values() if isinstance(v, keras.layers.Layer)]
    return [v for layer in layers for v in layer.variables], [v for layer in layers for v in layer.trainable_variables]


def save_image_like(folder: Path) -> Path:
    module = ImageLike()
    return savedmodel.save_reusable(module, tf.TensorSpec((None, 3), tf.float32), folder, *layer_variables(module))


class BertLike(tf.Module):
    """A BERT-shaped encoder: dict of int inputs in, dict of pooled and sequence outputs out."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = keras.layers.Embedding(20, 6)
        self.embed.build((None, None))
        self.pool = keras.layers.Dense(6, activation="tanh")
        self.pool.build((None, 6))

    @tf.function
    def __call__(self, inputs: dict[str, tf.Tensor], training: bool = False) -> dict[str, tf.Tensor]:
        mask = tf.cast(inputs["input_mask"], tf.float32)[..., None]
        sequence = self.embed(inputs["input_word_ids"]) * mask
        pooled = self.pool(tf.reduce_sum(sequence, axis=1) / tf.reduce_sum(mask, axis=1))
        return {"pooled_output": pooled, "sequence_output": sequence}


def save_bert_like(folder: Path) -> Path:
    spec = {k: tf.TensorSpec((None, None), tf.int32) for k in ("input_word_ids", "input_mask", "input_type_ids")}
    module = BertLike()
    return savedmodel.save_reusable(module, spec, folder, *layer_variables(module))


@pytest.fixture
def image_model(tmp_path: Path) -> str:
    return str(save_image_like(tmp_path / "image_like"))


@pytest.fixture
def bert_model(tmp_path: Path) -> str:
    return str(save_bert_like(tmp_path / "bert_like"))


def classifier(handle: str, trainable: bool) -> keras.Model:
    inputs = keras.Input((3,))
    features = hub.HubLayer(handle, trainable=trainable, name="hub")(inputs)
    return keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(features))


def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 3)).astype("float32")
    return x, (x.sum(axis=1) > 0).astype("float32")


def test_variables_are_keras_variables_without_colon_names(image_model: str) -> None:
    layer = hub.HubLayer(image_model, trainable=True)
    assert len(layer.weights) == 7, "dense 2 + batch norm 4 + the dropout seed state"
    assert all(isinstance(v, keras.Variable) for v in layer.weights)
    assert all(":" not in v.name for v in layer.weights)
    assert len(layer.trainable_weights) == 4, "dense kernel/bias and BN gamma/beta; moving stats are not trainable"


def test_keras_variables_are_the_savedmodel_variables(image_model: str) -> None:
    layer = hub.HubLayer(image_model, trainable=True)
    x = np.ones((2, 3), "float32")
    assert np.abs(layer(x, training=False)).max() > 0
    for variable in layer.weights[:2]:  # the dense kernel and bias
        variable.assign(np.zeros(variable.shape, variable.dtype))
    assert np.allclose(layer(x, training=False), 0), "the SavedModel's function saw the assignment: no copy"


def test_fine_tuning_with_adamw_changes_the_savedmodel_weights(image_model: str) -> None:
    model = classifier(image_model, trainable=True)
    before = [v.numpy().copy() for v in model.get_layer("hub").trainable_weights]
    model.compile(optimizer=keras.optimizers.AdamW(1e-2), loss="binary_crossentropy")
    model.fit(*data(), epochs=2, batch_size=16, verbose=0)
    after = model.get_layer("hub").trainable_weights
    assert all(not np.allclose(b, a.numpy()) for b, a in zip(before, after))
    moving_mean = [v for v in model.get_layer("hub").non_trainable_weights if "moving_mean" in v.name][0]
    assert not np.allclose(moving_mean.numpy(), 0), "training=True reached BatchNorm: its statistics moved"


def test_frozen_layer_does_not_change(image_model: str) -> None:
    model = classifier(image_model, trainable=False)
    assert model.get_layer("hub").trainable_weights == []
    before = [v.numpy().copy() for v in model.get_layer("hub").weights]
    model.compile(optimizer="adam", loss="binary_crossentropy")
    model.fit(*data(), epochs=1, batch_size=16, verbose=0)
    assert all(np.allclose(b, a.numpy()) for b, a in zip(before, model.get_layer("hub").weights))


def test_training_flag_reaches_dropout(image_model: str) -> None:
    layer = hub.HubLayer(image_model, trainable=True)
    x = np.ones((8, 3), "float32")
    assert np.allclose(layer(x, training=False), layer(x, training=False))
    assert not np.allclose(layer(x, training=True), layer(x, training=False))


def test_dict_inputs_and_output_key(bert_model: str) -> None:
    ids = keras.Input((None,), dtype="int32", name="input_word_ids")
    mask = keras.Input((None,), dtype="int32", name="input_mask")
    types = keras.Input((None,), dtype="int32", name="input_type_ids")
    inputs = {"input_word_ids": ids, "input_mask": mask, "input_type_ids": types}
    pooled = hub.HubLayer(bert_model, trainable=True, output_key="pooled_output")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(1)(pooled))
    batch = {"input_word_ids": np.array([[2, 3, 0]], "int32"), "input_mask": np.array([[1, 1, 0]], "int32"),
             "input_type_ids": np.zeros((1, 3), "int32")}
    assert model.predict(batch, verbose=0).shape == (1, 1)
    with pytest.raises(KeyError, match="'cls' is not an output.*pooled_output"):
        hub.HubLayer(bert_model, output_key="cls")(batch)


def test_keras_round_trip_keeps_predictions(image_model: str, tmp_path: Path) -> None:
    model = classifier(image_model, trainable=True)
    model.compile(optimizer="adam", loss="binary_crossentropy")
    model.fit(*data(), epochs=1, batch_size=16, verbose=0)
    x = data()[0]
    path = tmp_path / "model.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path)  # safe_mode stays on
    assert np.allclose(model.predict(x, verbose=0), reloaded.predict(x, verbose=0), atol=1e-6)


def test_unknown_model_lists_the_known(kit_env) -> None:
    with pytest.raises(hub.UnknownModelError, match="Unknown model 'gpt5'"):
        hub.resolve_model("gpt5", offline())


def test_stand_in_is_exported_once_atomically_and_named(kit_env, monkeypatch, tmp_path) -> None:
    calls = []

    def export(folder: Path) -> dict[str, str]:
        calls.append(folder)
        save_image_like(folder / "features")
        return {"feature_vector": "features"}

    model = hub.HubModel("tiny", "image", {"gpu": {"feature_vector": "https://tfhub.dev/x/1"}},
                         standins.StandIn("tiny-stand-in", "a tiny stand-in", export))
    monkeypatch.setitem(hub.MODELS, "tiny", model)
    first = hub.resolve_model("tiny", offline())
    assert "offline stand-in a tiny stand-in, exported to" in first.source
    assert hub.HubLayer(first.handles["feature_vector"])(np.ones((2, 3), "float32")).shape == (2, 4)
    second = hub.resolve_model("tiny", offline())
    assert "cached in" in second.source and len(calls) == 1
    assert sorted(p.name for p in (kit_env / "cache" / "models").iterdir()) == ["tiny-stand-in"]


def test_failed_export_leaves_nothing_and_says_how_to_fix(kit_env, monkeypatch) -> None:
    def export(folder: Path) -> dict[str, str]:
        (folder / "partial").write_text("half")
        raise FileNotFoundError("weights missing")

    stand_in = standins.StandIn("broken-stand-in", "a stand-in", export)
    monkeypatch.setitem(hub.MODELS, "broken", hub.HubModel("broken", "image", {}, stand_in))
    with pytest.raises(hub.ModelUnavailableError, match="python -m kitlib pack"):
        hub.resolve_model("broken", offline())
    models = kit_env / "cache" / "models"
    assert not models.exists() or list(models.iterdir()) == [], "nothing half-exported is left"


def test_unfreezing_later_makes_the_weights_trainable(image_model: str) -> None:
    layer = hub.HubLayer(image_model, trainable=False)
    assert all(not v.trainable for v in layer.weights)
    layer.trainable = True
    assert len(layer.trainable_weights) == 4 and sum(v.trainable for v in layer.weights) == 4
    layer.trainable = False
    assert layer.trainable_weights == [] and not any(v.trainable for v in layer.weights)


def test_unfreeze_top_trains_only_the_top_variables(image_model: str) -> None:
    inputs = keras.Input((3,))
    layer = hub.HubLayer(image_model, trainable=False, name="hub")
    model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(layer(inputs)))
    everything = layer.unfreeze_top(4)  # Dense kernel and bias, then BatchNorm gamma and beta
    assert len(everything) == 4 and layer.trainable_weights == everything
    top = layer.unfreeze_top(2)
    assert top == everything[2:] and layer.trainable_weights == top, "re-unfreezing starts from all trainable"
    before = [v.numpy().copy() for v in everything]
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="binary_crossentropy")
    model.fit(*data(), epochs=1, batch_size=16, verbose=0)
    moved = [not np.array_equal(b, v.numpy()) for b, v in zip(before, everything)]
    assert moved == [False, False, True, True], "only the top two variables learn"
    with pytest.raises(ValueError, match=r"unfreeze_top\(5\): .* has 4 trainable variables; pass 0 to 4"):
        layer.unfreeze_top(5)


def test_inference_only_trains_weights_but_keeps_batchnorm_statistics(image_model: str, tmp_path: Path) -> None:
    inputs = keras.Input((3,))
    layer = hub.HubLayer(image_model, trainable=True, inference_only=True, name="hub")
    model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(layer(inputs)))
    stats = [v for v in layer.non_trainable_weights if "moving" in v.name]
    before_stats = [v.numpy().copy() for v in stats]
    before_kernel = layer.trainable_weights[0].numpy().copy()
    model.compile(optimizer=keras.optimizers.AdamW(1e-2), loss="binary_crossentropy")
    model.fit(*data(), epochs=1, batch_size=16, verbose=0)
    assert not np.allclose(before_kernel, layer.trainable_weights[0].numpy()), "weights should train"
    assert all(np.array_equal(b, v.numpy()) for b, v in zip(before_stats, stats)), "statistics must stay"
    x = np.ones((4, 3), "float32")
    assert np.allclose(layer(x, training=True), layer(x, training=False)), "dropout stays off"
    model.save(tmp_path / "m.keras")
    assert keras.saving.load_model(tmp_path / "m.keras").get_layer("hub").inference_only


def test_missing_tensorflow_text_ops_name_the_matching_install(tmp_path: Path, monkeypatch) -> None:
    def unregistered(path: str) -> None:
        raise RuntimeError("Op type not registered 'TFText>RoundRobinTrim' in binary running on vm.")

    monkeypatch.setattr(tf.saved_model, "load", unregistered)
    major_minor = ".".join(tf.__version__.split(".")[:2])
    with pytest.raises(RuntimeError, match=rf"pip install 'tensorflow-text=={major_minor}\.\*'"):
        hub.HubLayer(str(tmp_path))


# --- mixed precision: the stand-in SavedModels are float32, as TF Hub's are ----------------------------------------


MIXED = pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"], indirect=True)  # float32: above


def _trains_under(model: keras.Model, hub_layer: hub.HubLayer, x: Any, y: np.ndarray) -> None:
    """One step: the hub layer speaks the policy's dtype, the head float32, gradients reach float32 variables."""
    assert keras.backend.standardize_dtype(hub_layer.compute_dtype) == keras.mixed_precision.global_policy().compute_dtype
    assert keras.backend.standardize_dtype(model.output.dtype) == "float32", "the head ends in float32"
    with tf.GradientTape() as tape:
        loss = keras.ops.mean(keras.losses.binary_crossentropy(y[:, None], model(x, training=True)))
    weights = hub_layer.trainable_weights
    grads = tape.gradient(loss, weights)
    assert weights and all(g is not None for g in grads), "every trainable SavedModel variable gets a gradient"
    assert any(float(tf.reduce_max(tf.abs(g))) > 0 for g in grads)
    before = [w.numpy().copy() for w in weights]
    keras.optimizers.Adam(1e-2).apply_gradients(zip(grads, weights))
    assert any(not np.array_equal(a, w.numpy()) for a, w in zip(before, weights)), "the SavedModel's weights moved"
    floats = [w for w in model.weights if "float" in w.dtype] + [v for v in hub_layer._module.variables
                                                                 if v.dtype.is_floating]
    assert all(w.dtype in ("float32", tf.float32) for w in floats), "variables stay float32 under mixed precision"


@MIXED
def test_image_stand_in_fine_tunes_under_mixed_precision(policy: str) -> None:
    handle = hub.resolve_model("resnet_v2_50", offline()).handles["feature_vector"]
    layer = hub.HubLayer(handle, trainable=True, inference_only=True)
    inputs = keras.Input((32, 32, 3))
    features = layer(inputs)
    assert keras.backend.standardize_dtype(features.dtype) == keras.mixed_precision.global_policy().compute_dtype
    model = keras.Model(inputs, heads.head(features.shape[-1], 2, 0.0, seed=1)(features))
    x = np.random.default_rng(0).random((4, 32, 32, 3)).astype("float32")
    _trains_under(model, layer, x, np.array([0, 1, 0, 1], "float32"))


@MIXED
def test_text_stand_in_fine_tunes_under_mixed_precision(policy: str) -> None:
    handles = hub.resolve_model("bert_en_uncased", offline()).handles
    inputs = keras.Input((), dtype="string")
    packed = hub.BertPreprocessor(handles["preprocessor"], seq_length=8)(inputs)
    layer = hub.HubLayer(handles["encoder"], trainable=True, output_key="sequence_output")
    model = keras.Model(inputs, heads.mean_pooled(layer(packed), packed["input_mask"], 2, 0.0, seed=1))
    x = tf.constant(["a wonderful film", "dull and long", "great acting", "a waste of time"])
    _trains_under(model, layer, x, np.array([1, 0, 1, 0], "float32"))


@pytest.mark.parametrize("policy", ["mixed_float16"], indirect=True)  # the head rule is the same under bfloat16
def test_a_mixed_precision_export_serves_float32(policy: str, tmp_path: Path) -> None:
    handle = hub.resolve_model("resnet_v2_50", offline()).handles["feature_vector"]
    inputs = keras.Input((32, 32, 3))
    features = hub.HubLayer(handle, inference_only=True)(inputs)
    model = keras.Model(inputs, heads.head(features.shape[-1], 3, 0.0, seed=1)(features))
    model.export(str(tmp_path / "served"), verbose=False)
    served = tf.saved_model.load(str(tmp_path / "served")).signatures["serving_default"]
    assert [spec.dtype for spec in served.structured_input_signature[1].values()] == [tf.float32]
    out = next(iter(served(tf.zeros((2, 32, 32, 3))).values()))
    assert out.dtype == tf.float32 and np.allclose(out.numpy().sum(axis=1), 1, atol=1e-6)


@pytest.mark.parametrize("policy", ["mixed_float16"], indirect=True)  # where HubLayer casts: float32 passes too
def test_ragged_word_pieces_pass_through_uncast(policy: str) -> None:
    preprocessor = hub.resolve_model("bert_en_uncased", offline()).handles["preprocessor"]
    tokenize = hub.HubLayer(preprocessor, method="tokenize")
    pack = hub.HubLayer(preprocessor, method="bert_pack_inputs", arguments={"seq_length": 8})
    pieces = tokenize(tf.constant(["a wonderful film", "dull"]))
    assert isinstance(pieces, tf.RaggedTensor) and pieces.dtype.is_integer
    packed = pack([pieces.merge_dims(-2, -1)])
    assert packed["input_word_ids"].shape == (2, 8) and packed["input_mask"].numpy().sum(axis=1).tolist()[1] >= 3


@pytest.mark.parametrize("policy", ["mixed_bfloat16"], indirect=True)
def test_a_stand_in_exported_under_mixed_precision_is_float32(kit_env, policy: str) -> None:
    handle = hub.resolve_model("resnet_v2_50", offline()).handles["feature_vector"]  # a cold cache: exported now
    assert keras.mixed_precision.global_policy().name == policy, "the lesson's policy is back after the export"
    module = tf.saved_model.load(handle)
    assert hub._input_signature(module).dtype == tf.float32
    assert module(tf.zeros((1, 32, 32, 3)), False).dtype == tf.float32, "computes in float32, as TF Hub's models do"


def test_resolve_model_needs_the_runs_config() -> None:
    """The profile decides which TF Hub model serves (small BERT on cpu, BERT-base on gpu), so there is no default."""
    with pytest.raises(TypeError, match="cfg"):
        hub.resolve_model("bert_en_uncased")



# For a window of 22 word pieces, the first 6 and the last 16 (all-MiniLM-L6-v2's uncased vocabulary):
WINDOW_TEXTS = [
    # 35 pieces; the tail starts at a word ("grows")
    "The film starts slowly and the first hour is dull, but the cast is good and the story grows on you until the "
    "last scene, which is wonderful. I loved it.",
    # the head ends inside "unbelievably" (un | ##bel ##ie ##va ##bly): its first piece reads back as it was
    "The cast is all good unbelievably good, and the story grows on you until the last scene, which is wonderful. "
    "I loved it.",
    # the tail starts inside "overwrought" (over | ##wr ##ough ##t): it starts at the next word instead
    "The film starts slowly and the plot is overwrought, but the story grows on you until the end. Loved it",
    "A wonderful film 😀",  # the emoji is [UNK]
    "A short one.",
    "",
]


def test_window_texts_tokenize_back_to_the_window(exported_stand_ins: Path) -> None:
    """Lesson 06 feeds every text model the encoder's window written back as text: it reads as the same word pieces,
    except that an unknown word ([UNK]) is left out and a tail cut inside a word starts at the next whole word."""
    cfg = dataclasses.replace(SMOKE, cache_dir=exported_stand_ins, offline=True)
    handle = hub.resolve_model("bert_en_uncased", cfg).handles["preprocessor"]
    layer = hub.BertPreprocessor(handle, seq_length=24, head_tokens=6)
    pieces = hub.vocabulary(handle)
    tokens = layer.tokenize(tf.constant(WINDOW_TEXTS))
    windows, cut = layer.window(tokens).to_list(), (tokens.row_lengths() > 22).numpy()
    written = hub.window_texts(layer, WINDOW_TEXTS)
    back = layer.tokenize(tf.constant(written)).to_list()
    for window, was_cut, again, text in zip(windows, cut, back, written):
        head, tail = (window[:6], window[6:]) if was_cut else (window, [])
        while tail and pieces[tail[0]].startswith("##"):
            tail = tail[1:]
        assert again == [i for i in head + tail if pieces[i] != "[UNK]"], text
    assert cut.tolist() == [True, True, True, False, False, False]
    assert back[:2] == windows[:2], "whole words at both ends, or a head cut inside a word: the very same window"
    assert np.array_equal(layer(tf.constant(WINDOW_TEXTS[:2]))["input_word_ids"],
                          layer(tf.constant(list(written[:2])))["input_word_ids"]), "the encoder reads them alike"
    assert written[1].startswith("the cast is all good un grows on you")
    assert len(back[2]) == len(windows[2]) - 3 and written[2] == (
        "the film starts slowly and the , but the story grows on you until the end . loved it"), "##wr ##ough ##t left out"
    assert list(written[3:]) == ["a wonderful film", "a short one .", ""], "a text that fits is kept whole, in BERT's words"
