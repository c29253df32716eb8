"""Lesson 12's recipe (`kitlib finetune`) on tiny data of k classes: the model to beat, frozen head, lesson 04's and
05's winners, exports that load as the report says, and an --out folder that is never clobbered."""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import smoke_kit

import kitlib
from kitlib import __main__ as cli
from kitlib import _fs
from kitlib.data import containers
from kitlib.models import finetuned, hub, recipe

ROWS = (("pos", "a wonderful moving film, great acting"), ("neg", "a dull boring mess, awful acting"),
        ("plot", "the story follows a man who travels to the city"))


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory, exported_stand_ins: Path):
    root = tmp_path_factory.mktemp("recipe")
    with smoke_kit(root, exported_stand_ins):
        yield kitlib.setup(verbose=False), root


def three_class_csv(path: Path, per_class: int = 30, offset: int = 0) -> Path:
    """A CSV (review, label) of three easily told classes, each text with a numbered variation."""
    rows = [f'"{text} {i + offset}",{label}' for i in range(per_class) for label, text in ROWS]
    path.write_text("review,label\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


@dataclasses.dataclass
class CliRun:
    """The module's one real training: `python -m kitlib finetune` on the learner's own train, val and test files."""
    args: list[str]
    source: Path
    out: Path
    data: containers.TextData
    result: recipe.Run
    printed: str
    records: list[dict]


@pytest.fixture(scope="module")
def text_run(smoke) -> CliRun:
    cfg, root = smoke
    source, test, val = (three_class_csv(root / "mine.csv", 25), three_class_csv(root / "test.csv", 7, 100),
                         three_class_csv(root / "dev.csv", 4, 200))
    out = root / "out"
    args = [str(source), "--task", "text", "--profile", "smoke", "--label-column", "label", "--test-file", str(test),
            "--val-file", str(val)]
    seen, train = [], recipe.run

    def watched(data, cfg, settings):
        seen.append((data, train(data, cfg, settings)))
        return seen[-1][1]

    printed = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(printed):
        patch.setattr(recipe, "run", watched)
        assert cli.main(["finetune", *args, "--out", str(out)]) == 0
    (data, result), = seen
    return CliRun(args, source, out, data, result, printed.getvalue(), kitlib.load_results(root / "results", "smoke"))


def test_finetune_trains_exports_records_and_reports_on_the_learners_test_file(text_run) -> None:
    printed, out = text_run.printed, text_run.out
    assert all(f"[{i}/5]" in printed for i in range(1, 6)), printed
    assert "75 training, 12 validation and 21 test examples" in printed, "every training row trains: the splits are given"
    assert (out / "model.keras").is_file() and (out / "serving" / "saved_model.pb").is_file()
    report = (out / "report.md").read_text()
    assert "sizes: train 75, val 12, test 21" in report and "## Stages on the test split (21 examples)" in report
    assert "classes (3): `neg`, `plot`, `pos`" in report and "| plot |" in report and "confusion_matrix.png" in report
    assert "import tensorflow_text" in report and str(out.absolute() / "serving") in report
    assert (out / "confusion_matrix.png").read_bytes()[:4] == b"\x89PNG"
    assert [(r["lesson"], r["metric"], r["dataset"], r["n_test"]) for r in text_run.records] == \
        [("12", "test_accuracy", "mine", 21)]


def test_text_recipe_trains_every_layer_with_lesson_04s_recipe(smoke, text_run) -> None:
    cfg, _ = smoke
    data, result, printed = text_run.data, text_run.result, text_run.printed
    assert data.class_names == ("neg", "plot", "pos")
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
    handle = text_run.result.backbone_handles["preprocessor"]
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


def test_texts_grouped_by_length_are_predicted_back_in_their_order(text_run) -> None:
    model, data = text_run.result.model, text_run.data
    in_order = recipe.probabilities(model, data.dataset("test", shuffle=False).map(lambda x, y: x))
    grouped = recipe.split_probabilities(model, data, "test")
    assert not np.array_equal(data.by_length("test", shuffle=False)[1][0], np.arange(len(in_order)))
    np.testing.assert_allclose(grouped, in_order, atol=1e-5)
    np.testing.assert_allclose(text_run.result.probabilities, in_order, atol=1e-5, err_msg="the run scored these rows")


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


def test_exports_load_in_a_fresh_process_exactly_as_the_report_says(text_run) -> None:
    data, result = text_run.data, text_run.result
    report = (text_run.out / "report.md").read_text()
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


def test_report_states_each_stage_against_stage_0_with_its_time(text_run) -> None:
    report = (text_run.out / "report.md").read_text()
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
    data, result = text_run.data, text_run.result
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


# `finetune --out` never clobbers: a staged folder swapped in whole, refused over files the kit did not write.

@pytest.fixture
def finetune(text_run, monkeypatch: pytest.MonkeyPatch):
    """`python -m kitlib finetune ... --out OUT` as the module's run called it, with that run's training and exports
    (copied from its own --out) standing in for training and exporting again."""
    calls = []

    def run(data, cfg, settings):
        calls.append(settings)
        assert data.class_names == text_run.result.class_names
        assert list(data.labels("test")) == list(text_run.result.y_test)
        return text_run.result

    def write_exports(result, folder: Path) -> dict[str, Path]:
        assert result is text_run.result
        shutil.copy2(text_run.out / "model.keras", folder / "model.keras")
        shutil.copytree(text_run.out / "serving", folder / "serving")
        return {"keras": folder / "model.keras", "serving": folder / "serving"}

    monkeypatch.setattr(recipe, "run", run)
    monkeypatch.setattr(recipe, "write_exports", write_exports)

    def call(out: Path, *extra: str) -> int:
        return cli.main(["finetune", *text_run.args, "--out", str(out), *extra])

    call.trainings = calls
    return call


def test_a_folder_it_did_not_write_is_refused_unless_forced(finetune, tmp_path) -> None:
    out = tmp_path / "mine"
    (out / "serving").mkdir(parents=True)
    (out / "serving" / "my_client.py").write_text("print('mine')\n")
    (out / "notes.txt").write_text("keep me\n")
    with pytest.raises(SystemExit, match=r"not empty and was not written by the kit .*notes.txt, serving.*--force"):
        finetune(out)
    assert not finetune.trainings, "refused before any training"
    assert (out / "serving" / "my_client.py").read_text() == "print('mine')\n"
    assert finetune(out, "--force") == 0
    assert not (out / "notes.txt").exists() and (out / "serving" / "saved_model.pb").is_file()


def test_its_own_folder_is_replaced_whole_but_not_over_files_added_since(finetune, tmp_path) -> None:
    out = tmp_path / "out"
    assert finetune(out) == 0
    written = sorted(p.name for p in out.iterdir())
    assert written == sorted([recipe.MARKER, "confusion_matrix.png", "model.keras", "report.md", "serving"])
    assert finetune(out) == 0, "a folder the kit wrote is replaced by the next run"
    (out / "my_client.py").write_text("print('mine')\n")
    with pytest.raises(SystemExit, match=r"holds files the kit did not write there \(my_client.py\)"):
        finetune(out)
    assert (out / "my_client.py").exists() and len(finetune.trainings) == 2


def test_an_unwritable_out_is_found_before_training(finetune, tmp_path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder\n")
    with pytest.raises(SystemExit, match="Could not create a folder in .*a_file"):
        finetune(blocker / "out")
    assert not finetune.trainings


def test_a_failure_before_the_end_leaves_the_previous_run_whole(finetune, tmp_path, monkeypatch) -> None:
    out = tmp_path / "out"
    assert finetune(out) == 0
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}

    def broken(*args, **kwargs):
        raise RuntimeError("killed while writing the report")

    monkeypatch.setattr(recipe, "write_report", broken)
    with pytest.raises(RuntimeError, match="killed"):
        finetune(out)
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before, "report, model and serving export all still come from the first run"
    assert [p.name for p in tmp_path.iterdir()] == ["out"], "no staging left behind"


def test_stale_staging_of_a_killed_run_is_cleaned(finetune, tmp_path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".out.{_fs.STAGING_MARK}{dead.pid}.x1y2"
    (stale / "serving").mkdir(parents=True)
    (stale / "serving" / "variables.data").write_bytes(os.urandom(1024))
    assert finetune(tmp_path / "out") == 0
    assert not stale.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_second_run_into_the_same_folder_is_refused(finetune, tmp_path) -> None:
    out = tmp_path / "out"
    with _fs.one_at_a_time(out.absolute()):  # another run holds the folder
        with pytest.raises(SystemExit, match="Another run is writing .*out now"):
            finetune(out)
    assert not out.exists() and not finetune.trainings


def test_out_may_not_overlap_the_data(finetune, text_run) -> None:
    source = text_run.source
    with pytest.raises(SystemExit, match="overlaps your data"):
        finetune(source.parent, "--force")
    assert source.is_file()


def test_the_profile_defaults_are_printed_and_can_be_changed(finetune, tmp_path, capsys) -> None:
    assert finetune(tmp_path / "a") == 0
    printed = capsys.readouterr().out
    assert "smoke profile: --max-examples 240 (default 240; 0 for every example), --seq-length 32 (default 32)" in printed
    assert finetune(tmp_path / "b", "--seq-length", "24", "--max-examples", "0") == 0
    settings = finetune.trainings[-1]
    assert settings.text.seq_length == 24 and settings.text.max_examples is None
    assert "--max-examples all (default 240" in capsys.readouterr().out
