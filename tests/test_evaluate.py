"""Metric reports, the 2-D projection, and results records."""

from __future__ import annotations

import time

import numpy as np
import pytest

import kitlib
from kitlib import evaluate


def test_confusion_matrix_and_report_match_hand_counts() -> None:
    y_true = [0, 0, 0, 1, 1, 1, 1, 1]
    y_pred = [0, 0, 1, 1, 1, 1, 0, 1]
    assert kitlib.confusion_matrix(y_true, y_pred).tolist() == [[2, 1], [1, 4]]
    report = kitlib.classification_report(y_true, y_pred, ["neg", "pos"])
    assert report["accuracy"] == pytest.approx(6 / 8)
    assert report["pos"]["precision"] == pytest.approx(4 / 5) and report["pos"]["recall"] == pytest.approx(4 / 5)
    assert report["neg"]["precision"] == pytest.approx(2 / 3) and report["neg"]["recall"] == pytest.approx(2 / 3)
    assert report["neg"]["f1-score"] == pytest.approx(2 / 3) and report["neg"]["support"] == 3
    assert report["macro avg"]["f1-score"] == pytest.approx((2 / 3 + 4 / 5) / 2)
    text = [line for line in str(report).splitlines() if line.strip()]
    assert text[0].split() == ["precision", "recall", "f1-score", "support"]
    assert text[1].split() == ["neg", "0.667", "0.667", "0.667", "3"]
    assert text[3].split() == ["accuracy", "0.750", "8"] and text[4].split()[:2] == ["macro", "avg"]


def test_report_survives_a_class_never_predicted() -> None:
    report = kitlib.classification_report([0, 1, 1], [1, 1, 1], ["neg", "pos"])
    assert report["neg"] == {"precision": 0.0, "recall": 0.0, "f1-score": 0.0, "support": 1}
    assert kitlib.confusion_matrix([0, 0], [0, 0], 2).tolist() == [[2, 0], [0, 0]], "n_classes keeps unseen classes"


def test_mismatched_lengths_are_a_clear_error() -> None:
    with pytest.raises(ValueError, match="one label per example"):
        kitlib.confusion_matrix([0, 1], [0, 1, 1])


def test_project_2d_keeps_the_main_directions() -> None:
    rng = np.random.default_rng(0)
    points = rng.normal(size=(200, 2)) * [10, 1]
    vectors = np.concatenate([points, rng.normal(size=(200, 6)) * 0.01], axis=1)
    projected = kitlib.project_2d(vectors)
    assert projected.shape == (200, 2)
    assert np.std(projected[:, 0]) == pytest.approx(np.std(points[:, 0]), rel=0.05)


def test_records_round_trip_and_latest_wins(kit_env) -> None:
    cfg = kitlib.setup(profile="smoke", verbose=False)
    kitlib.record_result(cfg, "02", "test_accuracy", 0.7, dataset="rt", model="BiLSTM", seconds=3.0, n_test=10)
    kitlib.record_result(cfg, "02", "test_accuracy", 0.8, dataset="rt", model="BiLSTM", seconds=4.0, n_test=10)
    assert kitlib.latest_result("02", "test_accuracy", "smoke")["value"] == 0.8
    assert kitlib.latest_result("02", "test_accuracy", "cpu") is None
    records = kitlib.load_results(profile="smoke")
    assert [r["value"] for r in records] == [0.7, 0.8] and records[0]["profile"] == "smoke"
    table = kitlib.results_table(records)
    assert table.count("| 02 |") == 1 and "0.8000" in table


def test_stopwatch_measures_the_block() -> None:
    with evaluate.stopwatch() as timer:
        time.sleep(0.2)
    assert 0.2 <= timer["seconds"] < 0.2 + 0.15, "a 0.2 s sleep, give or take a busy machine's scheduling"
    with pytest.raises(RuntimeError), evaluate.stopwatch() as failed:
        time.sleep(0.05)
        raise RuntimeError("the block fails")
    assert 0.05 <= failed["seconds"] < 0.2, "a failing block is timed too"


def test_ten_classes_with_one_never_predicted() -> None:
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    y_true = np.repeat(np.arange(10), 3)
    y_pred = y_true.copy()
    y_pred[y_true == 3] = 5  # cats always called dogs: class 3 is never predicted
    y_pred[0] = 9
    matrix = kitlib.confusion_matrix(y_true, y_pred, 10)
    assert matrix.shape == (10, 10) and matrix[3, 5] == 3 and matrix[0, 9] == 1 and matrix.sum() == 30
    report = kitlib.classification_report(y_true, y_pred, names)
    assert report["cat"] == {"precision": 0.0, "recall": 0.0, "f1-score": 0.0, "support": 3}
    assert report["dog"]["precision"] == pytest.approx(0.5) and report["dog"]["recall"] == 1.0
    f1 = [report[name]["f1-score"] for name in names]
    assert report["macro avg"]["f1-score"] == pytest.approx(np.mean(f1)) and report["macro avg"]["f1-score"] < report["accuracy"]
    assert report["accuracy"] == pytest.approx(26 / 30)
    lines = [line for line in str(report).splitlines() if line.strip()]
    assert len(lines) == 1 + 10 + 1 + 2 and lines[1 + 3].split() == ["cat", "0.000", "0.000", "0.000", "3"]


def test_long_class_names_keep_the_report_aligned() -> None:
    report = kitlib.classification_report([0, 1], [0, 1], ["a very long class name", "b"])
    lines = str(report).splitlines()
    assert lines[2].startswith("a very long class name") and lines[0].index("precision") > len("a very long class name")


def test_confusion_matrix_refuses_labels_outside_the_classes() -> None:
    with pytest.raises(ValueError, match=r"0..9; found \[10\]"):
        kitlib.confusion_matrix([0, 10], [0, 1], 10)
    with pytest.raises(ValueError, match=r"found \[-1\]"):
        kitlib.confusion_matrix([0, 1], [0, -1], 10)


def test_one_table_renderer_and_one_newest_rule() -> None:
    table = evaluate.render_table(["model", "accuracy"], [["a|b", "90.0%"], ["c", "80.0%"]])
    assert table.splitlines() == ["| model | accuracy |", "| --- | --- |", "| a\\|b | 90.0% |", "| c | 80.0% |"]
    with pytest.raises(ValueError, match="needs 2 cells"):
        evaluate.render_table(["model", "accuracy"], [["only one"]])
    records = [{"lesson": "02", "model": "m", "value": 1}, {"lesson": "03", "model": "m", "value": 2},
               {"lesson": "02", "model": "m", "value": 3}]
    assert [r["value"] for r in evaluate.newest(records, keys=("lesson", "model"))] == [3, 2]
