"""Lesson 12's recipe on tiny data of k classes: the model to beat, frozen head, lesson 04's and 05's winners, exports."""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import smoke_kit

import kitlib
from kitlib.models import finetuned, hub, recipe

WORDS = {"good": "a wonderful moving film, great acting", "bad": "a dull boring mess, awful acting",
         "plot": "the story follows a man who travels to the city"}


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory, exported_stand_ins: Path):
    root = tmp_path_factory.mktemp("recipe")
    with smoke_kit(root, exported_stand_ins):
        yield kitlib.setup(verbose=False), root


def three_class_csv(path: Path, per_class: int = 30) -> Path:
    """A CSV of three easily told classes, each text with a numbered variation."""
    rows = [f'"{text} {i}",{label}' for i in range(per_class) for label, text in WORDS.items()]
    path.write_text("text,label\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def text_run(smoke):
    cfg, root = smoke
    data = kitlib.load_text(three_class_csv(root / "three.csv"), cfg, verbose=False)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        result = recipe.run(data, cfg)
    return data, result, printed.getvalue()


def test_text_recipe_trains_every_layer_with_lesson_04s_recipe(smoke, text_run) -> None:
    cfg, _ = smoke
    data, result, printed = text_run
    assert data.class_names == ("bad", "good", "plot")
    assert [stage.name for stage in result.stages] == ["0", "1", "2"]
    assert result.baseline == recipe.CLASSICAL
    assert result.probabilities.shape == (len(data.labels("test")), 3)
    assert np.allclose(result.probabilities.sum(axis=1), 1, atol=1e-5)
    assert result.accuracy > 0.6, f"three easy classes, chance 1/3: {result.accuracy:.1%}"
    spec = finetuned.TextRecipe.for_profile(cfg)
    assert result.settings.text == spec, "kitlib.recipe trains with the definition lesson 04 reads"
    encoder = result.model.get_layer("encoder")
    encoder.trainable = False
    encoder.trainable = True
    every = len(encoder.trainable_weights)
    assert every > 20 and encoder.trainable, "all of the encoder's layers fine-tune (lesson 04's winner)"
    optimizer = result.model.optimizer.get_config()
    schedule = optimizer["learning_rate"]
    assert type(result.model.optimizer) is keras.optimizers.AdamW and optimizer["weight_decay"] == spec.weight_decay
    assert schedule["class_name"] == "WarmupLinearDecay", "AdamW with warm-up and linear decay"
    assert schedule["config"]["total_steps"] == spec.steps(len(data.labels("train")))
    assert schedule["config"]["peak"] == spec.peak_learning_rate
    preprocessor = result.model.get_layer("preprocessor")
    assert (preprocessor.seq_length, preprocessor.head_tokens, preprocessor.trim) == (spec.seq_length,
                                                                                      spec.head_tokens, True)
    evaluations = len(result.fine_tune_history.epoch)
    assert 1 <= evaluations <= spec.max_epochs * spec.evaluations_per_epoch
    lines = re.findall(r"epoch \d+/\d+: loss .* validation accuracy .*examples/s\)", printed)
    assert len(lines) == evaluations, printed
    assert all(stage.seconds > 0 and stage.rate > 0 for stage in result.stages)


def test_profiles_size_the_text_recipe_for_the_device(smoke) -> None:
    cfg, _ = smoke
    sizes = {p: finetuned.TextRecipe.for_profile(dataclasses.replace(cfg, profile=p)) for p in ("smoke", "cpu", "gpu")}
    assert sizes["cpu"].seq_length >= 128 and sizes["gpu"].seq_length >= 256
    assert all(0 < s.head_tokens < s.seq_length - 2 and s.trainable == "everything" for s in sizes.values())
    settings = recipe.Settings.for_profile(cfg, seq_length=64, max_examples=0)
    assert settings.text.seq_length == 64 and settings.text.head_tokens <= 15 and settings.text.max_examples is None
    assert settings.image.max_examples is None
    with pytest.raises(ValueError, match="too short"):
        recipe.Settings.for_profile(cfg, seq_length=4)
    with pytest.raises(ValueError, match="positive number"):
        recipe.Settings.for_profile(cfg, max_examples=-1)


def test_warm_up_then_linear_decay_survives_saving() -> None:
    schedule = finetuned.WarmupLinearDecay(1e-3, 10, 110)
    rates = [float(schedule(tf.constant(step, tf.int64))) for step in (0, 5, 10, 60, 110, 200)]
    np.testing.assert_allclose(rates, [0, 5e-4, 1e-3, 5e-4, 0, 0], atol=1e-9)
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(schedule))
    assert again.get_config() == schedule.get_config()


def test_head_and_tail_truncation_and_trimmed_batches(smoke, text_run) -> None:
    handle = text_run[1].backbone_handles["preprocessor"]
    words = " ".join(f"w{i}" for i in range(60))
    layer = hub.BertPreprocessor(handle, seq_length=16, head_tokens=4, trim=True)
    pieces = layer._module.tokenize(tf.constant([words])).merge_dims(-2, -1)[0].numpy().tolist()
    ids = layer(tf.constant([words, "short"]))["input_word_ids"].numpy()
    assert ids.shape == (2, 16)
    assert ids[0, 1:5].tolist() == pieces[:4] and ids[0, 5:15].tolist() == pieces[-10:], "the head and the tail"
    short = layer(tf.constant(["short", "tiny"]))
    assert short["input_word_ids"].shape[1] < 16, "a batch of short texts is cut to its longest"
    with pytest.raises(ValueError, match="head_tokens"):
        hub.BertPreprocessor(handle, seq_length=16, head_tokens=15)


def test_the_classical_baseline_learns_without_pre_training(smoke) -> None:
    cfg, root = smoke
    data = kitlib.load_text(three_class_csv(root / "baseline.csv"), cfg, verbose=False)
    model = kitlib.classical_baseline(data.splits["train"], data.splits["val"])
    probs = model.predict_proba(data.texts("test"))
    assert probs.shape == (len(data.labels("test")), 3)
    assert (probs.argmax(axis=1) == data.labels("test")).mean() > 0.8, "each class has its own words"


def _code_blocks(report: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", report, flags=re.S)


def _fresh_python(code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(Path(kitlib.__file__).parent.parent), "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)


def test_exports_load_in_a_fresh_process_exactly_as_the_report_says(smoke, text_run) -> None:
    cfg, root = smoke
    data, result, _ = text_run
    folder = root / "export"
    paths = recipe.export(result, folder)
    assert paths["keras"].is_file() and (paths["serving"] / "saved_model.pb").is_file()
    report = recipe.write_report(result, data, folder).read_text()
    saved_code, keras_code = _code_blocks(report)
    assert "import tensorflow_text" in saved_code and "kitlib" not in saved_code, "TensorFlow alone, plus its text ops"
    texts = ["a film I would happily watch again", "two hours I will not get back"]
    expected = recipe.probabilities(result.model, tf.constant(texts))

    served = _fresh_python(saved_code)
    assert served.returncode == 0, served.stderr[-3000:]
    labels, probs = map(ast.literal_eval, served.stdout.strip().splitlines()[-2:])
    np.testing.assert_allclose(probs, expected, atol=1e-4)
    assert labels == [data.class_names[i] for i in expected.argmax(axis=1)]
    without = _fresh_python(saved_code.replace("import tensorflow_text", "import os as tensorflow_text"))
    # which of tensorflow_text's ops TF names first (CaseFoldUTF8, WordpieceTokenizeWithOffsets, ...) varies by run
    assert without.returncode != 0 and "Op type not registered" in without.stderr, \
        "the report's import is what loading needs"

    loaded = _fresh_python(keras_code)
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    np.testing.assert_allclose(json.loads(loaded.stdout.strip().splitlines()[-1]), expected, atol=1e-4)


def test_report_states_each_stage_against_stage_0_with_its_time(smoke, text_run) -> None:
    _, root = smoke
    data, result, _ = text_run
    (root / "report").mkdir()
    report = recipe.write_report(result, data, root / "report").read_text()
    rows = [line for line in report.splitlines() if re.match(r"\| [012] \|", line)]
    assert len(rows) == 3 and "the model to beat" in rows[0]
    assert all(re.search(r"(wins|ties|loses): [+-]\d+\.\d points \(95% interval", row)
               for row in rows[1:]), rows
    assert all(re.search(r"\| \d+\.\d s \| [\d,]+\.\d \|$", row) for row in rows), rows
    assert "examples/s" in report and "epoch(s) trained" in report


def test_class_labels_are_plotted_as_plain_text(smoke, text_run) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    _, root = smoke
    data, result, _ = text_run
    names = ("$\\foo$", "a|b", "$x^$")
    with pytest.raises(ValueError):  # what happens without the report's plain-text setting
        kitlib.plot_confusion_matrix(np.eye(3, dtype=int), names)
        plt.savefig(io.BytesIO())
    plt.close("all")
    odd = dataclasses.replace(result, class_names=names)
    (root / "odd").mkdir()
    report = recipe.write_report(odd, dataclasses.replace(data, class_names=names), root / "odd").read_text()
    assert (root / "odd" / "confusion_matrix.png").read_bytes()[:4] == b"\x89PNG"
    assert "| a\\|b |" in report and "`$\\foo$`" in report


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
    result = recipe.run(data, cfg, verbose=False)
    backbone = result.model.get_layer("backbone")
    assert backbone.inference_only, "BatchNorm stays in inference mode while the top fine-tunes"
    assert 0 < len(backbone.trainable_weights) <= result.settings.image.unfreeze_top, "only the top fine-tunes"
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
