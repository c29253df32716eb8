"""Hostile submissions: each one scores what its own code earns, touches nothing outside its sandbox, and costs only
its own row. One class of cheating, careless and broken notebooks is graded once by `python -m kitlib grade`."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import resource
import time
from pathlib import Path

import nbformat
import pytest
from test_grading import build_mini_lesson

from kitlib.__main__ import main
from kitlib.course import grading, release

KIT = Path(grading.__file__).resolve().parents[1]
NAMESPACES = bool(grading.isolation()[0])
needs_namespaces = pytest.mark.skipif(not NAMESPACES, reason="this machine cannot create PID and mount namespaces "
                                      "with unshare (no user namespaces and not root); CI's machine can")
WRONG_NN = ("def nearest_neighbours(word, vectors, vocabulary, k=8):\n"
            "    return vocabulary[:k]\n")
RIGHT_NN = ("def nearest_neighbours(word, vectors, vocabulary, k=8):\n"
            "    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)\n"
            "    i = vocabulary.index(word)\n"
            "    order = [j for j in np.argsort(-(unit @ unit[i])) if j != i]\n"
            "    return [vocabulary[j] for j in order[:k]]\n")
COLUMNS = ["ex1-nearest_neighbours", "ex2-projector_export", "closing"]


def _digest(folder: Path) -> dict[str, str]:
    """sha256 of every file under a folder (links not followed)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and not p.is_symlink() and "__pycache__" not in p.parts}


def _with(notebook: dict, index: int, source: str) -> dict:
    """A copy of a notebook with cell `index`'s source replaced."""
    copy = json.loads(json.dumps(notebook))
    copy["cells"][index]["source"] = source
    return copy


def _extra(notebook: dict, index: int, source: str) -> dict:
    """A copy of a notebook with a code cell inserted before cell `index` (-1: appended)."""
    copy = json.loads(json.dumps(notebook))
    cell = {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source": source}
    copy["cells"].insert(len(copy["cells"]) if index == -1 else index, cell)
    return copy


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Grade one class of hostile submissions; return the rows, the folders and what they held before."""
    base = tmp_path_factory.mktemp("hostile")
    (base / "lesson").mkdir()
    lesson = build_mini_lesson(base / "lesson")
    instructor = json.loads(lesson.read_text(encoding="utf-8"))
    blank = release.student_notebook(instructor)
    subs, out = base / "subs", base / "out"
    subs.mkdir()
    out.mkdir()
    victim = base / "instructor_file.md"
    victim.write_text("the instructor's own notes\n", encoding="utf-8")
    (out / "summary.md").symlink_to(victim)
    gradebook = out / "gradebook.csv"
    hack = f"open({str(gradebook)!r}, 'w').write('hacked'); open({str(victim)!r}, 'w').write('hacked')"
    solution_file = str(lesson)
    cases = {
        "replaced_check": _with(blank, 2, WRONG_NN + "import kitlib\nsetattr(kitlib.checks, 'nearest_neighbours', "
                                "lambda *a, **k: print('Check passed'))\n"),
        "replaced_expect": _with(blank, 2, WRONG_NN + "import kitlib.checks.core as core, kitlib.checks.lesson01 as l1\n"
                                 "core.expect = l1.expect = lambda *a, **k: None\n"),
        "custom_exc": _extra(blank, 2, "get_ipython().set_custom_exc((BaseException,), lambda *a, **k: None)\n"),
        "injected_verdicts": _extra(blank, -1, "open('verdicts.jsonl', 'a').write(json.dumps({'grade_id': "
                                    "'l01-ex1-nearest_neighbours', 'passed': True, 'message': 'Check passed: "
                                    "injected'}) + '\\nnot json\\n')\nprint('kitlib-check-done 00')\nimport json\n"),
        "exec_solutions": _with(blank, 2, "import json, kitlib\nfrom pathlib import Path\n"
                                "for p in [Path(kitlib.__file__).resolve().parents[1] / 'notebooks' / "
                                f"'01_word_embeddings.ipynb', Path({solution_file!r})]:\n"
                                "    if p.exists():\n"
                                "        exec(''.join(json.load(open(p))['cells'][2]['source']))\n"),
        "outlives_kernel": _extra(blank, 2, "import subprocess, sys\nsubprocess.Popen([sys.executable, '-c', "
                                  f"'import time; time.sleep(4); {hack}'], start_new_session=True)\n"
                                  "subprocess.Popen(['sleep', '4123'], start_new_session=True)\n"),
        "tampers_kit": _extra(blank, 2, "import kitlib.checks.lesson01 as l1\n"
                              "try:\n    open(l1.__file__, 'a').write('\\nexpect = lambda *a, **k: None\\n')\n"
                              "except OSError:\n    pass\n"),
        "tampers_classmates": _extra(blank, 2, "import glob, os\nfor p in glob.glob('/proc/*/cmdline') + "
                                     f"glob.glob({str(subs)!r} + '/**/*.ipynb', recursive=True):\n"
                                     "    try:\n        open(p, 'a').write('x')\n    except OSError:\n        pass\n"),
        "limits": _with(_with(instructor, 2, "try:\n    hog = bytearray(3 << 30)\n    limited = False\n"
                              "except MemoryError:\n    limited = True\n" + RIGHT_NN +
                              "if not limited:\n    nearest_neighbours = lambda *a, **k: []\n"),
                        4, "import subprocess\nstarted = []\ntry:\n    for _ in range(150):\n"
                           "        started.append(subprocess.Popen(['sleep', '30']))\n    forked = False\n"
                           "except OSError:\n    forked = True\n" + "".join(instructor["cells"][4]["source"]) +
                           "\nif not forked:\n    write_projector_files = None\n"),
        "floods_output": _extra(instructor, 3, "import os, sys\nfor _ in range(16):\n    print('x' * (1 << 20))\n"
                                "try:\n    for _ in range(400):\n        os.write(2, b'y' * (1 << 20))\n"
                                "except OSError:\n    pass\n"),
        "int_source": _with(instructor, 2, 12),
        "grade_id_list": json.loads(json.dumps(instructor)),
        "metadata_string": json.loads(json.dumps(instructor)),
        "nbgrader_string": json.loads(json.dumps(instructor)),
    }
    cases["grade_id_list"]["cells"][3]["metadata"]["nbgrader"]["grade_id"] = ["l01-ex1-nearest_neighbours"]
    cases["metadata_string"]["cells"][3]["metadata"] = "nbgrader"
    cases["nbgrader_string"]["cells"][3]["metadata"]["nbgrader"] = "grade me"
    for name, notebook in cases.items():
        (subs / f"{name}.ipynb").write_text(json.dumps(notebook), encoding="utf-8")
    (subs / "correct.ipynb").write_text(json.dumps(_with(instructor, 2, RIGHT_NN)), encoding="utf-8")
    (subs / "not_json.ipynb").write_text('{"cells": [\n', encoding="utf-8")
    v4 = nbformat.reads(json.dumps(_with(instructor, 2, RIGHT_NN)), as_version=4)
    (subs / "nbformat3.ipynb").write_text(nbformat.writes(nbformat.convert(v4, 3), version=3), encoding="utf-8")
    (subs / "link.ipynb").symlink_to(lesson)
    for name in ['=HYPERLINK("x.example","y")', "pipe|name", "new\nline"]:  # only their names matter: no kernel
        (subs / f"{name}.ipynb").write_text('{"cells": [\n', encoding="utf-8")
    before = {"kit": _digest(KIT), "subs": _digest(subs)}
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert main(["grade", str(subs), "--lesson", str(lesson), "--out", str(out), "--timeout", "60",
                 "--processes", "64", "--memory-gb", "2"]) == 0
    rss_growth_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    with open(gradebook, encoding="utf-8", newline="") as handle:
        rows = {row["submission"]: row for row in csv.DictReader(handle)}
    written = gradebook.read_text(encoding="utf-8")
    time.sleep(5)  # any process a submission left behind would strike now
    return {"rows": rows, "out": out, "subs": subs, "before": before, "victim": victim, "written": written,
            "rss_growth_mib": rss_growth_mib}


def _marks(row: dict) -> list[str]:
    return [row[c] for c in COLUMNS]


def test_the_class_is_graded_and_the_correct_submission_scores_full(hostile: dict) -> None:
    rows = hostile["rows"]
    assert len(rows) == 21, sorted(rows)
    assert _marks(rows["correct.ipynb"]) == ["pass", "pass", "pass"], rows["correct.ipynb"]
    assert rows["correct.ipynb"]["status"] == "graded"


@pytest.mark.parametrize("name", ["replaced_check", "replaced_expect", "custom_exc", "injected_verdicts",
                                  "exec_solutions", "outlives_kernel", "tampers_kit", "tampers_classmates"])
def test_cheats_earn_only_what_their_code_earns(hostile: dict, name: str) -> None:
    row = hostile["rows"][f"{name}.ipynb"]
    assert row["status"] == "graded", row
    assert _marks(row) == ["fail", "fail", "fail"], row
    assert "Check passed: injected" not in json.dumps(row)


def test_a_hidden_exception_is_a_fail_not_a_pass(hostile: dict) -> None:
    row = hostile["rows"]["custom_exc.ipynb"]
    assert "not written yet" in row["ex1-nearest_neighbours message"] or "did not finish" in \
        row["ex1-nearest_neighbours message"], row


def test_a_link_and_a_verbatim_copy_are_flagged(hostile: dict) -> None:
    rows = hostile["rows"]
    assert rows["link.ipynb"]["status"].startswith("refused") and rows["link.ipynb"]["score"] == "0"
    assert "link" in rows["link.ipynb"]["flags"]
    assert "verbatim (ex2)" in rows["limits.ipynb"]["flags"]  # exercise 2's instructor solution, pasted
    assert "verbatim (ex2)" in rows["correct.ipynb"]["flags"]  # its own ex1, the instructor's ex2
    assert not rows["replaced_check.ipynb"]["flags"]


@needs_namespaces
def test_nothing_outside_the_sandbox_changes(hostile: dict) -> None:
    assert _digest(KIT) == hostile["before"]["kit"], "a submission changed the kit"
    assert _digest(hostile["subs"]) == hostile["before"]["subs"], "a submission changed a classmate's notebook"
    assert hostile["victim"].read_text(encoding="utf-8") == "the instructor's own notes\n"
    gradebook = hostile["out"] / "gradebook.csv"
    assert gradebook.read_text(encoding="utf-8") == hostile["written"], "the gradebook changed after the run"
    assert not (hostile["out"] / "summary.md").is_symlink()
    left = [p for p in Path("/proc").glob("[0-9]*") if b"4123" in _cmdline(p)]
    assert not left, "a process a submission started outlived its kernel"


def _cmdline(proc: Path) -> bytes:
    try:
        return (proc / "cmdline").read_bytes()
    except OSError:
        return b""


@needs_namespaces
def test_memory_and_processes_are_limited(hostile: dict) -> None:
    row = hostile["rows"]["limits.ipynb"]
    assert _marks(row) == ["pass", "pass", "pass"], row  # each exercise is right only if its limit stopped it


def test_output_is_capped_and_the_grader_stays_small(hostile: dict) -> None:
    row = hostile["rows"]["floods_output.ipynb"]  # 16 MiB to stdout, 400 MiB to fd 2 (forwarded by ipykernel)
    assert row["status"] == "graded" or row["status"].startswith("timed out"), row
    assert _marks(row)[0] == ("pass" if row["status"] == "graded" else "fail"), row
    assert hostile["rss_growth_mib"] < 400, f"the grader grew by {hostile['rss_growth_mib']:.0f} MiB"


@pytest.mark.parametrize("name, says", [
    ("int_source", "not a valid nbformat 4 notebook: at cells/2/source"),
    ("metadata_string", "not a notebook (ValidationError"),
    ("not_json", "not a notebook (NotJSONError"),
])
def test_malformed_notebooks_get_a_row_that_says_why(hostile: dict, name: str, says: str) -> None:
    row = hostile["rows"][f"{name}.ipynb"]
    assert says in row["status"], row
    assert row["score"] == "0"


@pytest.mark.parametrize("name", ["grade_id_list", "nbgrader_string", "nbformat3"])
def test_odd_metadata_and_old_formats_are_graded(hostile: dict, name: str) -> None:
    row = hostile["rows"][f"{name}.ipynb"]
    assert row["status"] == "graded" and _marks(row) == ["pass", "pass", "pass"], row


def test_names_are_escaped_in_the_csv_and_the_summary(hostile: dict) -> None:
    names = set(hostile["rows"])
    assert "'=HYPERLINK(\"x.example\",\"y\").ipynb" in names
    summary = (hostile["out"] / "summary.md").read_text(encoding="utf-8")
    table = [line for line in summary.splitlines() if line.startswith("| ") and ".ipynb" in line]
    assert len(table) == 21 and all(line.count(" | ") == 4 for line in table), table
    assert "pipe\\|name.ipynb" in summary and "new line.ipynb" in summary
