"""The fine-tuned classifiers later lessons share: recipes, one training per profile, the cache."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

import kitlib
from kitlib import finetuned


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory):
    """One smoke-profile cache for the module, so the stand-ins are exported once."""
    root = tmp_path_factory.mktemp("finetuned")
    with pytest.MonkeyPatch.context() as patch:
        for name, value in {"KITLIB_CACHE": root / "cache", "KITLIB_RESULTS": root / "results",
                            "KITLIB_OFFLINE": "1", "KITLIB_PROFILE": "smoke"}.items():
            patch.setenv(name, str(value))
        patch.setenv("KITLIB_DATA_DIR", "")  # not the checkout's data/
        yield kitlib.setup(verbose=False)


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
    assert info["val_accuracy"] > 0.5


def test_unknown_kind_is_a_clear_error(smoke) -> None:
    with pytest.raises(ValueError, match="choose 'text' or 'image'"):
        finetuned.classifier("audio", smoke)


def test_bert_preprocessor_packs_strings_like_the_hub_interface(smoke) -> None:
    bert = kitlib.resolve_model("bert_en_uncased", smoke)
    layer = kitlib.hub.BertPreprocessor(bert.handles["preprocessor"], seq_length=32)
    packed = layer(tf.constant(["a great film", "x " * 40]))
    assert sorted(packed) == ["input_mask", "input_type_ids", "input_word_ids"]
    assert packed["input_word_ids"].shape == (2, 32)
    assert packed["input_mask"].numpy()[0].sum() == 5, "[CLS] a great film [SEP]"
    assert packed["input_mask"].numpy()[1].sum() == 32, "long texts are trimmed to seq_length"
    config = layer.get_config()
    assert keras.layers.deserialize({"class_name": "kitlib>BertPreprocessor", "config": config}).seq_length == 32


def test_bert_preprocessor_packs_any_length_and_refuses_one_without_room(smoke) -> None:
    bert = kitlib.resolve_model("bert_en_uncased", smoke)
    layer = kitlib.hub.BertPreprocessor(bert.handles["preprocessor"], seq_length=20)  # as TF Hub's: any length
    assert layer(tf.constant(["x " * 40]))["input_mask"].numpy().sum() == 20
    with pytest.raises(ValueError, match="seq_length=1 leaves no room for \\[CLS\\] and \\[SEP\\]: pass 2 or more"):
        kitlib.hub.BertPreprocessor(bert.handles["preprocessor"], seq_length=1)
