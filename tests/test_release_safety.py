"""Release safety: a mistyped marker never lets a solution through, and no command overwrites instructor work."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from kitlib.course import release
from kitlib.__main__ import main

SECRET = "answer = 42  # the secret solution line"


def notebook(*cells: tuple[str, str]) -> dict:
    """An nbformat 4 notebook of (cell_type, source) cells."""
    made = []
    for i, (kind, source) in enumerate(cells):
        cell = {"cell_type": kind, "id": f"c{i}", "metadata": {}, "source": source}
        if kind == "code":
            cell.update(outputs=[], execution_count=None)
        made.append(cell)
    return {"cells": made, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


def write(folder: Path, name: str, nb: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(json.dumps(nb, indent=1), encoding="utf-8")
    return path


GOOD = notebook(("markdown", "# Lesson"), ("code", f"def f():\n    ### BEGIN SOLUTION\n    {SECRET}\n    ### END SOLUTION\n"))


@pytest.mark.parametrize("cells, cell_number", [
    ((("markdown", f"### BEGIN SOLUTION\n{SECRET}\n### END SOLUTION"),), 1),
    ((("raw", f"### BEGIN SOLUTION\n{SECRET}\n### END SOLUTION"),), 1),
    ((("code", "x = 1"), ("code", f"### BEGIN SOLUTION (exercise 1)\n{SECRET}\n### END SOLUTION\n")), 2),
    ((("code", f"### begin solution\n{SECRET}\n### end solution\n"),), 1),
    ((("code", f"# BEGIN SOLUTION\n{SECRET}\n# END SOLUTION\n"),), 1),
    ((("code", f"### BEGIN SOLUTION\n{SECRET}\n### END  SOLUTION\n"),), 1),
    ((("code", f"### BEGIN SOLUTION\n{SECRET}\n"),), 1),
    ((("code", f"{SECRET}\n### END SOLUTION\n"),), 1),
], ids=["markdown", "raw", "trailing-text", "lower-case", "two-hashes", "double-space", "no-end", "no-begin"])
def test_near_markers_are_refused_naming_notebook_and_cell(tmp_path: Path, cells, cell_number: int) -> None:
    src = write(tmp_path / "src", "07_lesson.ipynb", notebook(*cells))
    with pytest.raises(SystemExit, match=rf"07_lesson.ipynb, cell {cell_number} "):
        main(["release", "--src", str(src.parent), "--out", str(tmp_path / "out")])
    assert not (tmp_path / "out" / "07_lesson.ipynb").exists()


def test_the_accepted_grammar_strips_the_solution(tmp_path: Path) -> None:
    src = write(tmp_path / "src", "a.ipynb", GOOD)
    [copy] = release.release([src], tmp_path / "out")
    text = copy.read_text(encoding="utf-8")
    assert SECRET not in text and release.STUB in text


def test_a_solution_only_line_left_in_the_copy_is_caught(tmp_path: Path) -> None:
    copy = notebook(("markdown", "# Lesson"), ("code", f"def f():\n    {SECRET}\n"))
    with pytest.raises(release.ReleaseError, match="a.ipynb, cell 2 .*still holds solution text"):
        release.verify_student_copy(copy, GOOD, "a.ipynb")
    release.verify_student_copy(release.student_notebook(GOOD), GOOD, "a.ipynb")


def test_a_broken_stripper_releases_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = write(tmp_path / "src", "a.ipynb", GOOD)
    monkeypatch.setattr(release, "student_notebook", lambda nb, name="": nb)  # a broken stripper
    with pytest.raises(release.ReleaseError, match="still holds solution text"):
        release.release([src], tmp_path / "out")
    assert not (tmp_path / "out" / "a.ipynb").exists()


@pytest.mark.parametrize("out", [".", "student", ".."], ids=["same", "inside", "contains"])
def test_out_folder_overlapping_the_source_is_refused(tmp_path: Path, out: str) -> None:
    src = write(tmp_path / "course" / "notebooks", "a.ipynb", GOOD)
    before = src.read_bytes()
    with pytest.raises(SystemExit, match="Refusing to write student copies"):
        main(["release", "--src", str(src.parent), "--out", str(src.parent / out)])
    assert src.read_bytes() == before


def test_an_instructor_notebook_is_never_overwritten(tmp_path: Path) -> None:
    src = write(tmp_path / "src", "a.ipynb", GOOD)
    kept = write(tmp_path / "backup", "a.ipynb", GOOD)
    with pytest.raises(SystemExit, match="Refusing to overwrite .*a.ipynb: it holds solutions"):
        main(["release", "--src", str(src.parent), "--out", str(kept.parent)])
    assert SECRET in kept.read_text(encoding="utf-8")
    assert main(["release", "--src", str(src.parent), "--out", str(tmp_path / "out")]) == 0
    assert main(["release", "--src", str(src.parent), "--out", str(tmp_path / "out")]) == 0  # its own copies: fine


def test_an_unreadable_notebook_is_named(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "broken.ipynb").write_text("{not json", encoding="utf-8")
    with pytest.raises(SystemExit, match=r"broken.ipynb is not a notebook \(NotJSONError"):
        main(["release", "--src", str(tmp_path / "src"), "--out", str(tmp_path / "out")])


def _released_text(tmp_path: Path, nb: dict) -> str:
    """Release one notebook through the CLI and return the student copy's text."""
    src = write(tmp_path / "src", "09_lesson.ipynb", nb)
    assert main(["release", "--src", str(src.parent), "--out", str(tmp_path / "out")]) == 0
    return (tmp_path / "out" / "09_lesson.ipynb").read_text(encoding="utf-8")


def test_solution_text_in_an_attachment_or_cell_metadata_is_refused(tmp_path: Path) -> None:
    import base64

    with_attachment = json.loads(json.dumps(GOOD))
    payload = base64.b64encode(f"notes: {SECRET}\n".encode()).decode()
    with_attachment["cells"][0]["attachments"] = {"notes.txt": {"text/plain": payload}}
    with pytest.raises(SystemExit, match=r"cell 1 \(markdown\) at attachments/notes.txt/text/plain"):
        main(["release", "--src", str(write(tmp_path / "a", "09_a.ipynb", with_attachment).parent),
              "--out", str(tmp_path / "out_a")])
    with_metadata = json.loads(json.dumps(GOOD))
    with_metadata["cells"][1]["metadata"]["note"] = f"the answer: {SECRET}"
    with pytest.raises(SystemExit, match=r"cell 2 \(code\) at metadata/note"):
        main(["release", "--src", str(write(tmp_path / "b", "09_b.ipynb", with_metadata).parent),
              "--out", str(tmp_path / "out_b")])
    assert not list((tmp_path / "out_a").glob("*.ipynb")) and not list((tmp_path / "out_b").glob("*.ipynb"))


def test_widget_state_and_outputs_are_not_copied(tmp_path: Path) -> None:
    nb = json.loads(json.dumps(GOOD))
    nb["metadata"]["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {"w": {"value": SECRET}}}}
    nb["cells"][1]["outputs"] = [{"output_type": "stream", "name": "stdout", "text": [SECRET + "\n"]}]
    text = _released_text(tmp_path, nb)
    assert SECRET not in text and "widget-state" not in text and release.STUB in text


@pytest.mark.parametrize("marker, named", [
    ("### BEGIN\u200b SOLUTION", "U+200B ZERO WIDTH SPACE"),
    ("### BEGIN S\u039fLUTION", "U+039F GREEK CAPITAL LETTER OMICRON"),
    ("### \uff22\uff25\uff27\uff29\uff2e SOLUTION", "FULLWIDTH LATIN CAPITAL LETTER B"),
    ("### BEGIN SOLUTION\u2060", "U+2060 WORD JOINER"),
], ids=["zero-width-space", "greek-omicron", "fullwidth-nfkc", "word-joiner-after"])
def test_disguised_markers_are_refused_naming_the_characters(tmp_path: Path, marker: str, named: str) -> None:
    nb = notebook(("code", f"def f():\n    {marker}\n    {SECRET}\n    ### END SOLUTION\n"))
    src = write(tmp_path / "src", "09_lesson.ipynb", nb)
    with pytest.raises(SystemExit, match=rf"09_lesson.ipynb, cell 1 .*{re.escape(named)}"):
        main(["release", "--src", str(src.parent), "--out", str(tmp_path / "out")])
    assert not (tmp_path / "out" / "09_lesson.ipynb").exists()


def test_cli_misuse_is_a_sentence_not_a_traceback(tmp_path: Path) -> None:
    notes = write(tmp_path, "notes.ipynb", GOOD)
    with pytest.raises(SystemExit, match="not a lesson file: lesson notebooks are named NN_slug.ipynb"):
        main(["mark", str(notes)])
    with pytest.raises(SystemExit, match="cannot be read as a notebook"):
        main(["mark", str(tmp_path / "01_missing.ipynb")])
    src = write(tmp_path / "src", "09_lesson.ipynb", GOOD)
    (tmp_path / "file").write_text("x", encoding="utf-8")
    with pytest.raises(SystemExit, match="is a file, not a folder"):
        main(["release", "--src", str(src.parent), "--out", str(tmp_path / "file")])
    with pytest.raises(SystemExit, match="is not a folder"):
        main(["release", "--src", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out")])
    (tmp_path / "locked").mkdir()
    (tmp_path / "locked" / "out").write_text("", encoding="utf-8")
    with pytest.raises(SystemExit, match="Cannot create the output folder"):
        main(["release", "--src", str(src.parent), "--out", str(tmp_path / "locked" / "out" / "deeper")])
