"""The teaching guide's grading commands (its section 3) run as written in a fresh clone, and give the reference
solution full marks in `kitlib course grade` and in nbgrader; the nbgrader_config.py that `kitlib course
nbgrader-config` writes for them."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from traitlets.config.loader import PyFileConfigLoader

from conftest import kit_environment
from kitlib import progress
from kitlib.__main__ import main
from kitlib.course import grading, nbconfig, tables
from kitlib.course.notebooks import STUB

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "teaching_guide.md"
SECTION = "### 3. Grading submissions"
EXAMPLE = ROOT / "notebooks" / "01_word_embeddings.ipynb"  # the lesson the guide's commands name
SLOW = ("00", "02", "08", "10")  # `make test-slow`: up to minutes each under both graders
LESSONS = [path for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
           if path == EXAMPLE or path.name[:2] in SLOW]


def load(course: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[dict, dict[str, str]]:
    """The course's nbgrader_config.py loaded as nbgrader loads it: (the config, the environment it set).

    The environment the file changes is given back to this process when the test ends.
    """
    for name in ("PATH", "KITLIB_PROFILE", "KITLIB_OFFLINE", "KITLIB_PROGRESS"):
        monkeypatch.setenv(name, os.environ.get(name, ""))
    config = PyFileConfigLoader(nbconfig.FILE, path=str(course)).load_config()
    return config, dict(os.environ)


def test_the_config_holds_the_kits_stub_a_timeout_and_the_kernels_environment(tmp_path, monkeypatch) -> None:
    course = tmp_path / "course"
    assert main(["course", "nbgrader-config", "--course", str(course)]) == 0
    config, environment = load(course, monkeypatch)
    assert config.ClearSolutions.code_stub == {"python": STUB}
    assert (config.ClearSolutions.begin_solution_delimeter, config.ClearSolutions.end_solution_delimeter) == \
           ("### BEGIN SOLUTION", "### END SOLUTION")
    assert config.Execute.timeout == 360, "4 times the smoke profile's 90 s a lesson"
    assert {name: environment[name] for name in ("KITLIB_PROFILE", "KITLIB_OFFLINE", "KITLIB_PROGRESS")} == \
           {"KITLIB_PROFILE": "smoke", "KITLIB_OFFLINE": "1", "KITLIB_PROGRESS": "0"}
    assert environment["PATH"].split(os.pathsep)[0] == str(Path(sys.executable).parent), "where alembic is"


def test_the_timeout_is_sized_to_the_profile_and_the_guide_states_it(tmp_path) -> None:
    measured = progress.measured_cells()["cpu"]["cells"].values()
    assert nbconfig.cell_timeout("cpu") == round(4 * max(tables.seconds(cell["took"]) for cell in measured))
    guide = " ".join(GUIDE.read_text(encoding="utf-8").split())
    assert f"{nbconfig.cell_timeout('smoke')} s in the smoke profile" in guide
    assert f"{nbconfig.cell_timeout('cpu')} s with `--profile cpu`" in guide
    with pytest.raises(SystemExit, match="The gpu profile has no lesson budget.*--timeout SECONDS"):
        main(["course", "nbgrader-config", "--course", str(tmp_path), "--profile", "gpu"])
    assert not (tmp_path / nbconfig.FILE).exists()
    with pytest.raises(SystemExit, match="--timeout 0: give the seconds a cell may run, 1 or more"):
        main(["course", "nbgrader-config", "--course", str(tmp_path), "--timeout", "0"])
    assert main(["course", "nbgrader-config", "--course", str(tmp_path), "--profile", "gpu", "--timeout", "1200"]) == 0
    assert "c.Execute.timeout = 1200\n" in (tmp_path / nbconfig.FILE).read_text(encoding="utf-8")


def test_its_own_config_is_rewritten_and_anyone_elses_is_left_alone(tmp_path) -> None:
    target = tmp_path / nbconfig.FILE
    assert main(["course", "nbgrader-config", "--course", str(tmp_path)]) == 0
    assert main(["course", "nbgrader-config", "--course", str(tmp_path), "--profile", "cpu"]) == 0
    assert "os.environ['KITLIB_PROFILE'] = 'cpu'\n" in target.read_text(encoding="utf-8")
    target.write_text("c = get_config()\nc.CourseDirectory.course_id = 'keras-101'\n", encoding="utf-8")
    with pytest.raises(SystemExit, match=f"{re.escape(str(target))} exists and was not written by .*Move it away"):
        main(["course", "nbgrader-config", "--course", str(tmp_path)])
    assert target.read_text(encoding="utf-8").endswith("'keras-101'\n"), "left as it was"
    assert [p.name for p in tmp_path.iterdir()] == [nbconfig.FILE], "no staging file left"


def guide_commands(lesson: Path) -> str:
    """The guide's section 3 bash blocks as one script (its `cd` holds for the blocks after it), for `lesson`."""
    guide = GUIDE.read_text(encoding="utf-8")
    start = guide.index(SECTION)
    section = guide[start:guide.index("\n### ", start + len(SECTION))]
    script = "".join(re.findall(r"^```bash\n(.*?)^```$", section, re.M | re.S))
    assert "nbgrader autograde" in script and "kitlib course grade" in script, "the guide's commands moved"
    return re.sub(r"\b01\b", grading.lesson_number(lesson), script.replace(EXAMPLE.stem, lesson.stem))


def fresh_clone(lesson: Path, folder: Path) -> Path:
    """What the guide's commands need of a checkout after `make setup`: the lesson, `.venv`, a collected file."""
    clone = folder / "clone"
    for place in ("notebooks", "submissions/reference"):
        (clone / place).mkdir(parents=True)
        shutil.copy(lesson, clone / place / lesson.name)
    (clone / ".venv").symlink_to(sys.prefix, target_is_directory=True)  # this environment, through a link
    return clone


@pytest.mark.parametrize("lesson", [pytest.param(path, marks=[pytest.mark.slow] if path != EXAMPLE else [])
                                    for path in LESSONS], ids=lambda path: path.name[:2])
def test_the_guides_commands_give_the_reference_solution_full_marks(lesson: Path, tmp_path: Path) -> None:
    clone = fresh_clone(lesson, tmp_path)
    bin_folder = str(Path(sys.executable).parent)
    env = {**os.environ, **kit_environment(tmp_path),
           "PATH": os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep) if p != bin_folder)}
    for unset in ("VIRTUAL_ENV", "KITLIB_PROFILE", "KITLIB_PROGRESS"):  # a shell where .venv is not activated
        env.pop(unset, None)
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", guide_commands(lesson)], cwd=clone, env=env,
                          capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, (done.stdout + done.stderr)[-6000:]
    graded = len(grading.graded_cells(json.loads(lesson.read_text(encoding="utf-8")), grading.lesson_number(lesson)))
    with (clone / "gradebook" / "gradebook.csv").open(encoding="utf-8", newline="") as table:
        (kit,) = [row for row in csv.DictReader(table) if row["student"] == "reference"]
    failed = {name: kit[f"{name} message"] for name in kit if kit[name] != "pass" and f"{name} message" in kit}
    assert int(kit["score"]) == int(kit["out_of"]) == graded, f"kitlib course grade: {kit['status']}, failed: {failed}"
    with (clone / "course" / "grades.csv").open(encoding="utf-8", newline="") as table:
        (theirs,) = [row for row in csv.DictReader(table) if row["student_id"] == "reference"]
    assert float(theirs["score"]) == float(theirs["max_score"]) == graded, theirs
    autograded = clone / "course" / "autograded" / "reference" / lesson.name[:2] / lesson.name
    assert "profile: smoke" in autograded.read_text(encoding="utf-8"), "the kernel inherits the config's profile"
