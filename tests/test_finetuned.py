"""The fine-tuned classifiers later lessons share: recipes, one training per profile, the cache."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import kitlib
from kitlib.data import loaders
from kitlib.models import finetuned, heads


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory):
    """One smoke-profile cache for the module, so the stand-ins are exported once."""
    root = tmp_path_factory.mktemp("finetuned")
    with pytest.MonkeyPatch.context() as patch:
        for name, value in {"KITLIB_CACHE": root / "cache", "KITLIB_RESULTS": root / "results",
                            "KITLIB_OFFLINE": "1", "KITLIB_PROFILE": "smoke"}.items():
            patch.setenv(name, str(value))
        patch.setenv("KITLIB_DATA_DIR", "")  # not the checkout's data/
        cfg = kitlib.setup(verbose=False)
        # Draw from every global generator, as a lesson's earlier cells do: the classifiers must not notice.
        random.random(), np.random.rand(3), keras.random.uniform((3,)), tf.random.uniform((3,))
        keras.layers.Dense(4).build((1, 4))
        yield cfg


def test_image_classifier_trains_once_then_loads_from_the_cache(smoke, capsys) -> None:
    model, info = finetuned.classifier("image", smoke)
    assert "fine-tuned now" in capsys.readouterr().out
    assert info["dataset"] == "lfw" and "MobileNetV2" in info["backbone"] and info["val_accuracy"] > 0.8
    images = np.random.default_rng(0).random((3, info["image_size"], info["image_size"], 3)).astype("float32")
    probs = model.predict(images, verbose=0)
    again, again_info = finetuned.classifier("image", smoke)
    assert "cached fine-tuned model" in capsys.readouterr().out
    assert np.allclose(again.predict(images, verbose=0), probs, atol=1e-6)
    assert again.get_layer("backbone").inference_only and not again.get_layer("backbone").trainable_weights
    data = kitlib.load_images("cats_and_dogs", smoke, image_size=info["image_size"], verbose=False,
                               **finetuned.split_sizes("image", smoke))  # what lesson 07 loads
    val = data.images("val").astype("float32") / 255.0
    accuracy = np.mean((again.predict(val, verbose=0).ravel() > 0.5) == data.labels("val"))
    assert accuracy == pytest.approx(info["val_accuracy"], abs=1e-6), "split_sizes gives the classifier's own splits"


def test_text_classifier_takes_raw_strings(smoke) -> None:
    model, info = finetuned.classifier("text", smoke, verbose=False)
    assert info["seq_length"] == 32 and "MiniLM" in info["backbone"]
    probs = model.predict(tf.constant(["a wonderful film", "dull", ""]), verbose=0)
    assert probs.shape == (3, 1) and np.all((probs >= 0) & (probs <= 1))
    val = loaders.load_text("imdb", smoke, verbose=False, **finetuned.split_sizes("text", smoke)).labels("val")
    majority = max(val.mean(), 1 - val.mean())
    assert info["val_accuracy"] > majority + 0.05, f"{info['val_accuracy']:.1%} vs the majority's {majority:.1%}"


FRESH_RUN = """
import sys
import numpy as np
import kitlib
from kitlib.models import finetuned, heads
model, info = finetuned.classifier("image", kitlib.setup(verbose=False), verbose=False)
np.savez(sys.argv[1], *model.get_layer("head").get_weights(), val_accuracy=info["val_accuracy"])
"""


def test_image_classifier_is_the_same_in_a_fresh_process_with_an_empty_cache(smoke, tmp_path: Path) -> None:
    """A new process, nothing cached, no draws before it, vs this one (its cache was empty too, draws first)."""
    model, info = finetuned.classifier("image", smoke, verbose=False)
    env = {**os.environ, "KITLIB_CACHE": str(tmp_path / "cache"), "KITLIB_RESULTS": str(tmp_path / "results"),
           "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    subprocess.run([sys.executable, "-c", FRESH_RUN, str(tmp_path / "fresh.npz")], env=env, check=True)
    fresh = np.load(tmp_path / "fresh.npz")
    assert float(fresh["val_accuracy"]) == info["val_accuracy"], "the same validation accuracy to the last digit"
    head = model.get_layer("head").get_weights()
    assert len(fresh.files) == len(head) + 1
    assert all(np.array_equal(mine, fresh[f"arr_{i}"]) for i, mine in enumerate(head)), "the same head, bit for bit"


def test_unknown_kind_is_a_clear_error(smoke) -> None:
    with pytest.raises(ValueError, match="choose 'text' or 'image'"):
        finetuned.classifier("audio", smoke)


def test_bert_preprocessor_packs_strings_like_the_hub_interface(smoke) -> None:
    bert = kitlib.resolve_model("bert_en_uncased", smoke)
    layer = kitlib.models.hub.BertPreprocessor(bert.handles["preprocessor"], seq_length=32)
    packed = layer(tf.constant(["a great film", "x " * 40]))
    assert sorted(packed) == ["input_mask", "input_type_ids", "input_word_ids"]
    assert packed["input_word_ids"].shape == (2, 32)
    assert packed["input_mask"].numpy()[0].sum() == 5, "[CLS] a great film [SEP]"
    assert packed["input_mask"].numpy()[1].sum() == 32, "long texts are trimmed to seq_length"
    config = layer.get_config()
    assert keras.layers.deserialize({"class_name": "kitlib>BertPreprocessor", "config": config}).seq_length == 32


def test_bert_preprocessor_packs_any_length_and_refuses_one_without_room(smoke) -> None:
    bert = kitlib.resolve_model("bert_en_uncased", smoke)
    layer = kitlib.models.hub.BertPreprocessor(bert.handles["preprocessor"], seq_length=20)  # as TF Hub's: any length
    assert layer(tf.constant(["x " * 40]))["input_mask"].numpy().sum() == 20
    with pytest.raises(ValueError, match="seq_length=1 leaves no room for \\[CLS\\] and \\[SEP\\]: pass 2 or more"):
        kitlib.models.hub.BertPreprocessor(bert.handles["preprocessor"], seq_length=1)


def tiny_frozen_model() -> keras.Model:
    """A frozen "backbone" and a head with seeded initial weights and dropout, as the classifiers' heads are."""
    inputs = keras.Input((4,))
    features = keras.layers.Dense(8, trainable=False, kernel_initializer=keras.initializers.GlorotUniform(1))(inputs)
    head = keras.Sequential([keras.Input((8,)), keras.layers.Dropout(0.2, seed=2), keras.layers.Dense(
        1, activation="sigmoid", kernel_initializer=keras.initializers.GlorotUniform(3))], name="head")
    return keras.Model(inputs, head(features))


def test_train_frozen_head_ignores_the_global_random_state() -> None:
    x = np.random.default_rng(0).normal(size=(2000, 4)).astype("float32")
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype("float32")
    train, test = (tf.data.Dataset.from_tensor_slices((x[a:b], y[a:b])).batch(256) for a, b in ((0, 1500), (1500, 2000)))
    runs = []
    for global_seed in (1, 7):
        keras.utils.set_random_seed(global_seed)  # what earlier cells drew must not matter
        model = tiny_frozen_model()
        initial = model.get_layer("head").get_weights()
        runs.append((finetuned.train_frozen_head(model, train, test, epochs=4), model.get_layer("head").get_weights()))
    assert not np.array_equal(initial[0], runs[1][1][0]), "the head trained"
    assert runs[0][0] == runs[1][0] and all(np.array_equal(a, b) for a, b in zip(runs[0][1], runs[1][1]))
    with pytest.raises(ValueError, match="at least 10 training examples"):
        finetuned.train_frozen_head(tiny_frozen_model(), train.take(0), test)


def test_train_frozen_head_learns_three_classes() -> None:
    x = np.random.default_rng(0).normal(size=(1500, 4)).astype("float32")
    y = np.digitize(x[:, 0] + 0.5 * x[:, 1], [-0.5, 0.5])  # three classes, roughly balanced
    train, test = (tf.data.Dataset.from_tensor_slices((x[a:b], y[a:b])).batch(256) for a, b in ((0, 1200), (1200, 1500)))
    inputs = keras.Input((4,))
    features = keras.layers.Dense(8, trainable=False, kernel_initializer=keras.initializers.GlorotUniform(1))(inputs)
    model = keras.Model(inputs, heads.head(8, 3, 0.0, seed=2)(features))
    accuracy = finetuned.train_frozen_head(model, train, test, epochs=30)
    assert accuracy > 0.7, f"three linearly separated classes, chance 1/3: {accuracy:.1%}"


def test_three_class_text_and_image_models(smoke) -> None:
    text, _ = finetuned.text_model(smoke, 16, n_classes=3)
    probs = text.predict(tf.constant(["a good film", "a plot summary", "dull"]), verbose=0)
    assert probs.shape == (3, 3) and np.allclose(probs.sum(axis=1), 1, atol=1e-5)
    assert text.get_layer("mean_of_tokens") is not None, "the text model averages the token vectors"
    image, _ = finetuned.image_model(smoke, 32, n_classes=3)
    assert image.predict(np.zeros((2, 32, 32, 3), "float32"), verbose=0).shape == (2, 3)
    assert finetuned.text_model(smoke, 16)[0].output.shape[-1] == 1, "two classes: one sigmoid unit, as lessons 06-10 use"


def test_train_frozen_head_returns_the_outputs_it_scored() -> None:
    """With probabilities=True the head's test outputs come back, and they are the ones the accuracy counts."""
    x = np.random.default_rng(1).normal(size=(600, 4)).astype("float32")
    y = (x[:, 0] - x[:, 2] > 0).astype("float32")
    train, test = (tf.data.Dataset.from_tensor_slices((x[a:b], y[a:b])).batch(64) for a, b in ((0, 400), (400, 600)))
    accuracy, outputs = finetuned.train_frozen_head(tiny_frozen_model(), train, test, epochs=5, probabilities=True)
    assert outputs.shape == (200, 1)
    assert accuracy == pytest.approx(np.mean((outputs[:, 0] > 0.5) == y[400:]), abs=1e-6)


@pytest.mark.parametrize("policy", ["mixed_float16"], indirect=True)
def test_the_shared_classifier_computes_in_float32_under_mixed_precision(smoke, policy: str) -> None:
    model, _ = finetuned.classifier("image", smoke, verbose=False)
    assert {layer.compute_dtype for layer in model.get_layer("backbone")._flatten_layers()} == {"float32"}
    assert keras.mixed_precision.global_policy().name == policy, "the lesson's policy is back afterwards"
