"""Grading a class: nbgrader accepts the lessons, and `kitlib grade` turns a folder of submissions into a gradebook."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kitlib.course import grading, release
from kitlib.__main__ import main

ROOT = Path(__file__).resolve().parents[1]
LESSONS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def _code(source: str) -> dict:
    return {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [],
            "source": source.splitlines(keepends=True)}


def _write(path: Path, notebook: dict) -> Path:
    path.write_text(json.dumps(notebook, indent=1), encoding="utf-8")
    return path


def build_mini_lesson(folder: Path) -> Path:
    """Lesson 01's two real exercises (solution and check cells) with a cheap closing assertion, marked."""
    source = json.loads((ROOT / "notebooks" / "01_word_embeddings.ipynb").read_text(encoding="utf-8"))
    exercise_cells = []
    for cell in source["cells"]:
        text = "".join(cell["source"])
        if cell["cell_type"] == "code" and (release.BEGIN in text or "kitlib.checks." in text):
            exercise_cells.append(_code(text))
    assert len(exercise_cells) == 4, "lesson 01 should have two solution cells and two check cells"
    notebook = {"nbformat": 4, "nbformat_minor": 5, "metadata": source["metadata"], "cells": [  # ids set below
        {"cell_type": "markdown", "metadata": {}, "source": ["# Lesson 01, the exercises only\n"]},
        _code("import numpy as np\nfrom pathlib import Path\nimport kitlib\n"),
        *exercise_cells,
        _code("assert nearest_neighbours('b', np.eye(3)[[0, 1, 1]], ['a', 'b', 'c'], 1) == ['c']\n"),
    ]}
    for number, cell in enumerate(notebook["cells"]):
        cell["id"] = f"c{number}"
    return _write(folder / "01_exercises.ipynb", grading.mark(notebook, "01"))


@pytest.fixture(scope="module")
def mini_lesson(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small marked lesson the gradebook tests grade against."""
    return build_mini_lesson(tmp_path_factory.mktemp("lesson"))


def test_lessons_carry_the_nbgrader_metadata_the_mark_command_writes() -> None:
    stale = grading.mark_files(LESSONS, check=True)
    assert not stale, f"run `python -m kitlib mark`: out of date: {[p.name for p in stale]}"


def test_every_exercise_gets_a_solution_cell_and_a_graded_check() -> None:
    for path in LESSONS:
        notebook = json.loads(path.read_text(encoding="utf-8"))
        lesson = grading.lesson_number(path)
        roles = [r for r in grading.cell_roles(notebook, lesson) if r]
        solutions = [r for r in roles if r["solution"]]
        checks = [r for r in roles if r["grade"] and not r["grade_id"].endswith("closing")]
        assert len(solutions) == len(checks), f"{path.name}: every solution cell needs a check cell after it"
        assert roles and any(r["grade_id"] == f"l{lesson}-closing" for r in roles), path.name


def test_mark_finds_cells_by_content_and_is_idempotent(mini_lesson: Path) -> None:
    notebook = json.loads(mini_lesson.read_text(encoding="utf-8"))
    ids = [c["metadata"].get("nbgrader", {}).get("grade_id") for c in notebook["cells"]]
    assert ids == ["l01-text-c0", None, "l01-ex1-solution", "l01-ex1-nearest_neighbours",
                   "l01-ex2-solution", "l01-ex2-projector_export", "l01-closing"]
    assert grading.mark(notebook, "01") == notebook
    assert main(["mark", "--check", str(mini_lesson)]) == 0
    notebook["cells"][3]["metadata"].pop("nbgrader")
    _write(mini_lesson.parent / "01_stale.ipynb", notebook)
    assert main(["mark", "--check", str(mini_lesson.parent / "01_stale.ipynb")]) == 1


def test_nbgrader_generate_assignment_accepts_every_lesson_and_matches_the_student_copies(tmp_path: Path) -> None:
    course = tmp_path / "course"
    source = course / "source" / "kit"
    source.mkdir(parents=True)
    for path in LESSONS:
        shutil.copy(path, source / path.name)
    assert main(["course", "nbgrader-config", "--course", str(course)]) == 0  # puts `alembic` on nbgrader's PATH
    done = subprocess.run([sys.executable, "-m", "nbgrader", "generate_assignment", "kit", "--force"],
                          cwd=course, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    for path in LESSONS:
        theirs = json.loads((course / "release" / "kit" / path.name).read_text(encoding="utf-8"))
        ours = release.student_notebook(json.loads(path.read_text(encoding="utf-8")))
        assert [(c["cell_type"], "".join(c["source"])) for c in theirs["cells"]] == \
               [(c["cell_type"], "".join(c["source"])) for c in ours["cells"]], path.name


@pytest.fixture(scope="module")
def graded(mini_lesson: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, dict]]:
    """A class of six: correct, blank, one wrong answer, crashing, hanging, and a file that is not a notebook."""
    subs = tmp_path_factory.mktemp("submissions")
    instructor = json.loads(mini_lesson.read_text(encoding="utf-8"))
    _write(subs / "correct.ipynb", instructor)
    blank = release.student_notebook(instructor)
    _write(subs / "blank.ipynb", blank)
    wrong = json.loads(json.dumps(instructor))
    wrong["cells"][2]["source"] = [  # forgets to leave the word itself out of its neighbours
        "def nearest_neighbours(word, vectors, vocabulary, k=8):\n",
        "    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True).clip(1e-12)\n",
        "    order = np.argsort(-(unit @ unit[vocabulary.index(word)]))\n",
        "    return [vocabulary[i] for i in order[:k]]\n"]
    wrong["cells"][3]["source"] = ["print('Check passed: I promise')\n"]  # tampering with a check cell is undone
    _write(subs / "wrong.ipynb", wrong)
    crash = json.loads(json.dumps(instructor))
    crash["cells"][4]["source"] = ["import os\n", "os._exit(3)\n"]
    _write(subs / "crash.ipynb", crash)
    hang = json.loads(json.dumps(instructor))
    hang["cells"][4]["source"] = ["import time\n", "time.sleep(600)\n"]
    (subs / "nested").mkdir()
    _write(subs / "nested" / "hang.ipynb", hang)
    (subs / "broken.ipynb").write_text("{ this is not json", encoding="utf-8")
    out = tmp_path_factory.mktemp("gradebook")
    code = main(["grade", str(subs), "--lesson", str(mini_lesson), "--out", str(out), "--timeout", "20"])
    assert code == 0
    with open(out / "gradebook.csv", encoding="utf-8") as handle:
        rows = {row["submission"]: row for row in csv.DictReader(handle)}
    return out, rows


def test_gradebook_verdicts(graded: tuple[Path, dict[str, dict]]) -> None:
    _, rows = graded
    assert set(rows) == {"correct.ipynb", "blank.ipynb", "wrong.ipynb", "crash.ipynb", "nested/hang.ipynb",
                         "broken.ipynb"}
    columns = ["ex1-nearest_neighbours", "ex2-projector_export", "closing"]
    verdict = {name: [row[c] for c in columns] for name, row in rows.items()}
    assert verdict["correct.ipynb"] == ["pass", "pass", "pass"]
    assert rows["correct.ipynb"]["status"] == "graded" and rows["correct.ipynb"]["score"] == "3"
    assert verdict["blank.ipynb"] == ["fail", "fail", "fail"]
    assert "not written yet" in rows["blank.ipynb"]["ex1-nearest_neighbours message"]
    assert verdict["wrong.ipynb"] == ["fail", "pass", "fail"]
    assert "CheckFailed" in rows["wrong.ipynb"]["ex1-nearest_neighbours message"]
    assert verdict["crash.ipynb"][0] == "pass" and verdict["crash.ipynb"][1:] == ["fail", "fail"]
    assert rows["crash.ipynb"]["status"].startswith("crashed")
    assert verdict["nested/hang.ipynb"] == ["pass", "fail", "fail"]
    assert rows["nested/hang.ipynb"]["status"] == "timed out after 20 s"
    assert rows["broken.ipynb"]["status"].startswith("not a notebook")


def test_summary_gives_pass_rates(graded: tuple[Path, dict[str, dict]]) -> None:
    out, _ = graded
    summary = (out / "summary.md").read_text(encoding="utf-8")
    assert "| ex1-nearest\\_neighbours | 3/6 | 50% |" in summary
    assert "| closing | 1/6 | 17% |" in summary


def test_wrong_lesson_is_reported_not_graded(mini_lesson: Path, tmp_path: Path) -> None:
    subs = tmp_path / "subs"
    subs.mkdir()
    other = json.loads((ROOT / "notebooks" / "10_scaling_out.ipynb").read_text(encoding="utf-8"))
    _write(subs / "other.ipynb", release.student_notebook(grading.mark(other, "10")))
    rows = grading.grade(subs, mini_lesson, tmp_path / "out", timeout=30)
    assert rows[0].status.startswith("wrong lesson") and "10" in rows[0].status
    assert rows[0].seconds == 0.0  # nothing was run


def test_submissions_run_without_network_or_instructor_environment(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    planted = {"KITLIB_DATA_DIR": str(tmp_path / "instructor-data"), "AWS_SECRET_ACCESS_KEY": "planted-secret",
               "GITHUB_TOKEN": "ghp_planted", "HF_TOKEN": "hf_planted"}
    for name, value in planted.items():
        monkeypatch.setenv(name, value)
    env = grading.clean_environment(tmp_path, "smoke")
    assert env["KITLIB_OFFLINE"] == "1" and env["KITLIB_CACHE"].startswith(str(tmp_path))
    assert not set(planted) & set(env)
    assert not [v for v in env.values() if "planted" in v]
    prefix, _ = grading.isolation()
    if not prefix:
        pytest.skip("this machine cannot create namespaces with unshare (no user namespaces, not root)")
    probe = ("import os, socket; s = socket.socket(); s.settimeout(3); "
             "print(s.connect_ex(('192.0.2.1', 80)), sorted(k for k in os.environ if 'planted' in os.environ[k]))")
    command = grading.launcher(tmp_path, "smoke", grading.sandbox.Limits())
    done = subprocess.run([*command, sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "101 []", done.stdout + done.stderr  # ENETUNREACH: no route out, no secrets


def test_bad_arguments_say_what_to_pass(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="not a folder"):
        main(["grade", str(tmp_path / "missing"), "--lesson", "01", "--notebooks", str(ROOT / "notebooks")])
    with pytest.raises(SystemExit, match="No lesson '42'"):
        main(["grade", str(tmp_path), "--lesson", "42", "--notebooks", str(ROOT / "notebooks")])


def test_regrading_one_student_or_file_updates_their_rows_and_keeps_the_class(mini_lesson: Path, tmp_path: Path,
                                                                             capsys) -> None:
    instructor = json.loads(mini_lesson.read_text(encoding="utf-8"))
    subs, out = tmp_path / "submissions", tmp_path / "gradebook"
    (subs / "alice").mkdir(parents=True)
    (subs / "bob").mkdir()
    alice, bob = subs / "alice" / "01_mini.ipynb", subs / "bob" / "01_mini.ipynb"
    alice.write_text("{ not json", encoding="utf-8")  # refused without a kernel
    _write(bob, release.student_notebook(instructor))
    assert main(["grade", str(subs), "--lesson", str(mini_lesson), "--out", str(out), "--timeout", "60"]) == 0

    def book() -> dict[str, dict]:
        with open(out / "gradebook.csv", encoding="utf-8", newline="") as handle:
            return {row["student"]: row for row in csv.DictReader(handle)}

    first = book()
    assert set(first) == {"alice", "bob"} and first["bob"]["score"] == "0" and first["alice"]["status"].startswith("not a")
    assert first["bob"]["submission"] == "bob/01_mini.ipynb" and first["bob"]["submitted"].endswith(" UTC")
    _write(bob, instructor)  # bob hands in again, correct this time
    assert main(["grade", str(subs / "bob"), "--lesson", str(mini_lesson), "--out", str(out), "--timeout", "60"]) == 0
    second = book()
    assert second["bob"]["score"] == "3" and second["bob"]["submission"] == "bob/01_mini.ipynb"
    assert second["alice"] == first["alice"], "re-grading bob leaves alice's row as it was"
    _write(alice, instructor)
    assert main(["grade", str(alice), "--lesson", str(mini_lesson), "--out", str(out), "--timeout", "60"]) == 0
    third = book()
    assert third["alice"]["score"] == "3" and third["bob"] == second["bob"] and len(third) == 2
    with open(out / "lms.csv", encoding="utf-8", newline="") as handle:
        lms = list(csv.reader(handle))
    assert lms[0] == ["student", "ex1-nearest_neighbours", "ex2-projector_export", "closing", "total"]
    assert sorted(lms[1:]) == [["alice", "1", "1", "1", "3"], ["bob", "1", "1", "1", "3"]]
    feedback = (out / "feedback" / "bob.md").read_text(encoding="utf-8")
    assert feedback.splitlines()[0] == f"# Feedback: {grading.md_cell(mini_lesson.name)}, bob"
    assert "## ex1-nearest\\_neighbours: passed" in feedback and "3 of 3 graded cells passed" in feedback
    assert "np.argsort" not in feedback, "feedback says what passed, never the solution"
    summary = (out / "summary.md").read_text(encoding="utf-8")
    assert "| alice | alice/01\\_mini.ipynb | graded | 3/3 |" in summary
    other = tmp_path / "02_lstm_baseline.ipynb"
    other.write_text((ROOT / "notebooks" / "02_lstm_baseline.ipynb").read_text(encoding="utf-8"), encoding="utf-8")
    with pytest.raises(SystemExit, match="holds the gradebook of"):
        main(["grade", str(alice), "--lesson", str(other), "--out", str(out)])
    edited = json.loads(json.dumps(instructor))
    edited["cells"] = [c for c in edited["cells"] if "kitlib.checks.projector_export" not in "".join(c["source"])]
    (mini_lesson.with_name("edited")).mkdir(exist_ok=True)
    _write(mini_lesson.with_name("edited") / mini_lesson.name, edited)
    with pytest.raises(SystemExit, match="other graded cells than the lesson has now"):
        main(["grade", str(alice), "--lesson", str(mini_lesson.with_name("edited") / mini_lesson.name), "--out", str(out)])


def test_a_failed_check_keeps_its_whole_message(mini_lesson: Path) -> None:
    outputs = [{"output_type": "error", "ename": "CheckFailed", "evalue": "wrong neighbours\nexpected: a\nreceived: b\nhint: c"}]
    ok, message = grading._verdict(outputs, True, "error")
    assert not ok and message.splitlines() == ["CheckFailed: wrong neighbours", "expected: a", "received: b", "hint: c"]


def test_student_ids_come_from_folders_or_file_names(tmp_path: Path) -> None:
    assert grading.student_id(tmp_path / "erin" / "01_word_embeddings.ipynb", tmp_path) == "erin"
    assert grading.student_id(tmp_path / "erin" / "01_word_embeddings.ipynb", tmp_path / "erin") == "erin"
    assert grading.student_id(tmp_path / "frank.ipynb", tmp_path) == "frank"
    assert grading.student_id(tmp_path / "a" / "b" / "x.ipynb", tmp_path) == "a"


def test_a_deleted_check_cell_is_restored_and_graded_not_called_another_lesson(mini_lesson: Path, tmp_path: Path) -> None:
    instructor = json.loads(mini_lesson.read_text(encoding="utf-8"))
    subs = tmp_path / "subs"
    subs.mkdir()
    deleted = json.loads(json.dumps(instructor))
    check = next(i for i, c in enumerate(deleted["cells"]) if "kitlib.checks.projector_export" in "".join(c["source"]))
    del deleted["cells"][check]  # the student removed exercise 2's check cell but answered it right
    _write(subs / "deleted.ipynb", deleted)
    row = grading.grade(subs, mini_lesson, tmp_path / "out", timeout=60)[0]
    assert row.status == "graded" and row.score() == 3, row
    assert row.flags[-1] == "deleted check cell restored from the lesson (ex2-projector_export)", row.flags


def test_the_closing_point_counts_only_when_every_exercise_passed() -> None:
    columns = {"l01-ex1-nearest_neighbours": (True, "Check passed"), "l01-ex2-projector_export": (False, "CheckFailed"),
               "l01-closing": (True, "ran without error")}
    closing = grading._closing_counted(columns)["l01-closing"]
    assert closing[0] is False and "not passed: ex2-projector_export" in closing[1]
    every = {**columns, "l01-ex2-projector_export": (True, "Check passed")}
    assert grading._closing_counted(every) == every
