"""Lesson 12's recipe on tiny data of k classes: frozen head, fine-tuned top, test predictions, lesson 09's export."""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

import kitlib
from kitlib.models import recipe

WORDS = {"good": "a wonderful moving film, great acting", "bad": "a dull boring mess, awful acting",
         "plot": "the story follows a man who travels to the city"}


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("recipe")
    with pytest.MonkeyPatch.context() as patch:
        for name, value in {"KITLIB_CACHE": root / "cache", "KITLIB_RESULTS": root / "results",
                            "KITLIB_OFFLINE": "1", "KITLIB_PROFILE": "smoke", "KITLIB_DATA_DIR": ""}.items():
            patch.setenv(name, str(value))
        yield kitlib.setup(verbose=False), root


def three_class_csv(path: Path, per_class: int = 30) -> Path:
    """A CSV of three easily told classes, each text with a numbered variation."""
    rows = [f'"{text} {i}",{label}' for i in range(per_class) for label, text in WORDS.items()]
    path.write_text("text,label\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_text_recipe_learns_three_classes_and_exports_a_serving_signature(smoke) -> None:
    cfg, root = smoke
    data = kitlib.load_text(three_class_csv(root / "three.csv"), cfg, verbose=False)
    assert data.class_names == ("bad", "good", "plot")
    result = recipe.run(data, cfg, verbose=False)
    assert result.probabilities.shape == (len(data.labels("test")), 3)
    assert np.allclose(result.probabilities.sum(axis=1), 1, atol=1e-5)
    assert result.accuracy > 0.6, f"three easy classes, chance 1/3: {result.accuracy:.1%}"
    assert result.baseline == "bag of embeddings" and result.seconds["baseline"] > 0
    assert len(result.fine_tune_history.epoch) == result.settings.fine_tune_epochs and result.head_history.epoch
    encoder = result.model.get_layer("encoder")
    assert 0 < len(encoder.trainable_weights) <= result.settings.unfreeze_top, "only the top of the encoder trains"

    paths = recipe.export(result, root / "export")
    assert paths["keras"].is_file() and (paths["serving"] / "saved_model.pb").is_file()
    serve = tf.saved_model.load(str(paths["serving"])).signatures["serving_default"]
    texts = list(data.texts("test")[:4])
    out = serve(text=tf.constant(texts))
    expected = recipe.probabilities(result.model, tf.constant(texts))
    np.testing.assert_allclose(out["probabilities"].numpy(), expected, atol=1e-4)
    assert [c.decode() for c in out["classes"].numpy()[0]] == ["bad", "good", "plot"]
    assert [c.decode() for c in out["label"].numpy()] == [data.class_names[i] for i in expected.argmax(axis=1)]


def test_the_baseline_learns_without_pre_training(smoke) -> None:
    cfg, root = smoke
    data = kitlib.load_text(three_class_csv(root / "baseline.csv"), cfg, verbose=False)
    name, model = recipe.baseline_model(data, cfg.seed)
    assert name == "bag of embeddings" and model.layers[-1].units == 3
    model.fit(data.train, epochs=40, verbose=0)
    accuracy = model.evaluate(data.test, verbose=0)[1]
    assert accuracy > 0.8, f"each class has its own words: a bag of embeddings tells them apart ({accuracy:.1%})"
    _, binary = recipe.baseline_model(dataclasses.replace(data, class_names=("bad", "good")), cfg.seed)
    assert binary.layers[-1].units == 1 and binary.loss == "binary_crossentropy", "two classes: one sigmoid unit"


def test_image_recipe_keeps_the_backbone_in_inference_mode_and_serves_encoded_bytes(smoke) -> None:
    from PIL import Image

    cfg, root = smoke
    rng = np.random.default_rng(0)
    for cls, colour in {"blue": (0, 0, 220), "green": (0, 200, 0), "red": (220, 0, 0)}.items():
        (root / "photos" / cls).mkdir(parents=True)
        for i in range(24):
            pixels = np.clip(np.array(colour) + rng.normal(0, 30, (32, 32, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / "photos" / cls / f"{i}.png")
    data = kitlib.load_images(root / "photos", cfg, image_size=32, verbose=False)
    settings = recipe.Settings.for_profile(cfg)
    result = recipe.run(data, cfg, settings, verbose=False)
    backbone = result.model.get_layer("backbone")
    assert backbone.inference_only, "BatchNorm stays in inference mode while the top fine-tunes"
    assert result.probabilities.shape == (len(data.labels("test")), 3) and result.accuracy > 0.6
    assert result.baseline == "small CNN from scratch" and 0 <= result.baseline_accuracy <= 1

    paths = recipe.export(result, root / "image_export")
    serve = tf.saved_model.load(str(paths["serving"])).signatures["serving_default"]
    encoded = []
    for image in data.images("test")[:3]:
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, "PNG")
        encoded.append(buffer.getvalue())
    out = serve(image_bytes=tf.constant(encoded))
    expected = recipe.probabilities(result.model, data.images("test")[:3].astype("float32") / 255.0)
    np.testing.assert_allclose(out["probabilities"].numpy(), expected, atol=1e-4)
