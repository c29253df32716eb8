"""Grading a class: nbgrader cell metadata for the lessons, and a gradebook from a folder of submissions.

Cells are recognised by content, so the metadata is written by `python -m kitlib mark` and kept in step by
a test, never by hand:

- a code cell holding `### BEGIN SOLUTION` is an nbgrader *solution* cell (`lNN-exK-solution`);
- the code cell after it that calls `kitlib.checks.<name>` is an autograded, locked *test* cell worth one
  point (`lNN-exK-<name>`);
- the lesson's last code cell (its closing assertions) is an autograded test cell too (`lNN-closing`);
- markdown cells are read-only (`locked`).

`grade(...)` runs every submitted notebook headless, each in its own kernel, process group, temporary
folder and kitlib cache, with a clean environment and (where Linux allows it) no network at all, and
writes a gradebook: one CSV row per submission, one column per exercise. Submissions are untrusted code.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterable

SOLUTION_MARK = "### BEGIN SOLUTION"
CHECK_CALL = re.compile(r"kitlib\.checks\.(?!build\b)(\w+)\(")
PASSED = "Check passed"
CODE_STUB = "raise NotImplementedError()"  # the kit's own stub (kitlib.course.release), also given to nbgrader


def lesson_number(path: Path) -> str:
    """The two-digit lesson number a lesson file starts with (`01_word_embeddings.ipynb` -> `01`)."""
    match = re.match(r"(\d\d)_", Path(path).name)
    if not match:
        raise ValueError(f"{path} is not a lesson file: lesson notebooks are named NN_slug.ipynb.")
    return match.group(1)


def _source(cell: dict) -> str:
    """A cell's source as one string (nbformat allows a list of lines or a string)."""
    source = cell.get("source", "")
    return source if isinstance(source, str) else "".join(source)


def _meta(grade_id: str, *, grade: bool = False, solution: bool = False, locked: bool = False,
          points: int | None = None) -> dict[str, Any]:
    """An nbgrader (schema 3) cell metadata block."""
    meta: dict[str, Any] = {"grade": grade, "grade_id": grade_id, "locked": locked, "schema_version": 3,
                            "solution": solution, "task": False}
    if points is not None:
        meta["points"] = points
    return meta


def cell_roles(notebook: dict, lesson: str) -> list[dict[str, Any] | None]:
    """The nbgrader metadata each cell of a lesson should carry (None: a plain cell), found by content."""
    code_cells = [i for i, cell in enumerate(notebook["cells"]) if cell["cell_type"] == "code"]
    closing = code_cells[-1] if code_cells else None
    roles: list[dict[str, Any] | None] = []
    exercise, checked = 0, True
    for index, cell in enumerate(notebook["cells"]):
        source = _source(cell)
        if cell["cell_type"] == "markdown":
            roles.append(_meta(f"l{lesson}-text-{cell.get('id', index)}", locked=True))
        elif cell["cell_type"] != "code":
            roles.append(None)
        elif SOLUTION_MARK in source:
            exercise, checked = exercise + 1, False
            roles.append(_meta(f"l{lesson}-ex{exercise}-solution", solution=True))
        elif CHECK_CALL.search(source) and not checked:
            checked = True
            name = CHECK_CALL.search(source).group(1)
            roles.append(_meta(f"l{lesson}-ex{exercise}-{name}", grade=True, locked=True, points=1))
        elif index == closing:
            roles.append(_meta(f"l{lesson}-closing", grade=True, locked=True, points=1))
        else:
            roles.append(None)
    return roles


def mark(notebook: dict, lesson: str) -> dict:
    """A copy of a lesson with nbgrader metadata on its solution, check, closing and markdown cells."""
    copy = json.loads(json.dumps(notebook))
    for cell, role in zip(copy["cells"], cell_roles(copy, lesson)):
        cell.setdefault("metadata", {}).pop("nbgrader", None)
        if role is not None:
            cell["metadata"]["nbgrader"] = role
    return copy


def mark_files(paths: Iterable[Path], check: bool = False) -> list[Path]:
    """Write nbgrader metadata into lesson files; with `check`, only list the files that are out of date."""
    stale = []
    for path in sorted(paths):
        notebook = json.loads(path.read_text(encoding="utf-8"))
        marked = mark(notebook, lesson_number(path))
        if marked != notebook:
            stale.append(path)
            if not check:
                path.write_text(json.dumps(marked, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return stale


# --------------------------------------------------------------------------------------------------
# The gradebook
# --------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Exercise:
    """One graded cell of a lesson: its grade_id, the column name and the instructor's source."""

    grade_id: str
    column: str
    source: str


def graded_cells(notebook: dict, lesson: str) -> list[Exercise]:
    """The lesson's check cells (one per exercise) then its closing assertions, in order."""
    found = []
    for cell, role in zip(notebook["cells"], cell_roles(notebook, lesson)):
        if role and role["grade"]:
            column = role["grade_id"].split("-", 1)[1]
            found.append(Exercise(role["grade_id"], column, _source(cell)))
    return found


def _verdict(outputs: list[dict]) -> tuple[bool, str]:
    """(passed, message) of an executed graded cell from its outputs."""
    for output in outputs:
        if output.get("output_type") == "error":
            message = f"{output.get('ename', 'Error')}: {output.get('evalue', '')}".strip()
            return False, message.splitlines()[0] if message else "error"
    text = "".join(_source({"source": o.get("text", "")}) for o in outputs if o.get("output_type") == "stream")
    line = next((l for l in text.splitlines() if l.startswith(PASSED)), "")
    return True, line or "ran without error"


def run_submission(notebook_path: Path, results_path: Path, timeout: float) -> None:
    """Child process: execute one prepared submission cell by cell, appending each graded cell's verdict."""
    import nbclient
    import nbformat
    from jupyter_client.manager import AsyncKernelManager

    notebook = nbformat.read(notebook_path, as_version=4)

    class IsolatedKernel(AsyncKernelManager):
        """A kernel started in a fresh network namespace (loopback only) when `unshare` allows it."""

        def format_kernel_cmd(self, extra_arguments: list[str] | None = None) -> list[str]:
            return [*_isolation_prefix(), *super().format_kernel_cmd(extra_arguments)]

    km = IsolatedKernel(kernel_name="python3", transport="ipc" if _isolation_prefix() else "tcp")
    client = nbclient.NotebookClient(notebook, km=km, timeout=timeout, allow_errors=True,
                                     resources={"metadata": {"path": str(notebook_path.parent)}})
    with open(results_path, "a", encoding="utf-8") as results, client.setup_kernel():
        for index, cell in enumerate(notebook.cells):
            if cell.cell_type != "code":
                continue
            client.execute_cell(cell, index)
            grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
            if cell.metadata.get("nbgrader", {}).get("grade"):
                passed, message = _verdict(cell.outputs)
                results.write(json.dumps({"grade_id": grade_id, "passed": passed, "message": message}) + "\n")
                results.flush()


@functools.lru_cache(maxsize=1)
def _isolation_prefix() -> tuple[str, ...]:
    """`unshare` arguments that give the kernel a network namespace with only loopback, or () if unavailable."""
    cmd = ("unshare", "--user", "--map-root-user", "--net", "sh", "-c", 'ip link set lo up && exec "$@"', "sh")
    try:
        ok = shutil.which("unshare") and shutil.which("ip") and subprocess.run(
            [*cmd, "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        ok = False
    return cmd if ok else ()


def clean_environment(workdir: Path, profile: str) -> dict[str, str]:
    """The environment a submission runs in: no inherited credentials or instructor paths, network off."""
    keep = {k: os.environ[k] for k in ("PATH", "LANG", "LC_ALL", "TZ") if k in os.environ}
    return {**keep, "HOME": str(workdir / "home"), "TMPDIR": str(workdir / "tmp"),
            "KITLIB_OFFLINE": "1", "KITLIB_PROFILE": profile, "KITLIB_PROGRESS": "0",
            "KITLIB_CACHE": str(workdir / "cache"), "KITLIB_RESULTS": str(workdir / "results"),
            "MPLBACKEND": "Agg", "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
            "JUPYTER_RUNTIME_DIR": str(workdir / "runtime"), "PYTHONDONTWRITEBYTECODE": "1"}


@dataclasses.dataclass
class Row:
    """One submission's line of the gradebook."""

    submission: str
    status: str
    verdicts: dict[str, tuple[bool | None, str]]
    seconds: float

    def score(self) -> int:
        """Number of graded cells that passed."""
        return sum(1 for ok, _ in self.verdicts.values() if ok)


def _prepare(path: Path, lesson_nb: dict, lesson: str, folder: Path) -> tuple[Path | None, str]:
    """Copy a submission into `folder` with its graded cells restored from the lesson; (path, problem)."""
    try:
        submitted = json.loads(path.read_text(encoding="utf-8"))
        cells = submitted["cells"]
        if not isinstance(cells, list):
            raise TypeError("cells is not a list")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
        return None, f"not a notebook ({type(exc).__name__}: {exc})"
    expected = graded_cells(lesson_nb, lesson)
    positions = _graded_positions(cells, expected)
    if positions is None:
        ids = {str(c.get("metadata", {}).get("nbgrader", {}).get("grade_id", "")) for c in cells if isinstance(c, dict)}
        others = sorted({g[1:3] for g in ids if re.match(r"l\d\d-", g)} - {lesson})
        what = f"it carries lesson {', '.join(others)}'s cells" if others else "its check cells are missing or out of order"
        return None, f"wrong lesson: {what}, expected lesson {lesson}"
    for index, exercise in zip(positions, expected):  # graded cells run the instructor's code, as in nbgrader
        cells[index]["source"] = exercise.source
        cells[index].setdefault("metadata", {})["nbgrader"] = {"grade": True, "grade_id": exercise.grade_id}
    target = folder / "submission.ipynb"
    target.write_text(json.dumps(submitted), encoding="utf-8")
    return target, ""


def _graded_positions(cells: list, expected: list[Exercise]) -> list[int] | None:
    """Where the lesson's graded cells sit in a submission: by nbgrader grade_id, else by check name in order."""
    code = [i for i, c in enumerate(cells) if isinstance(c, dict) and c.get("cell_type") == "code"]
    by_id = {c.get("metadata", {}).get("nbgrader", {}).get("grade_id"): i for i, c in enumerate(cells)
             if isinstance(c, dict)}
    if all(e.grade_id in by_id for e in expected):
        return [by_id[e.grade_id] for e in expected]
    positions, start = [], 0
    for exercise in expected:
        if exercise.grade_id.endswith("-closing"):
            if not code:
                return None
            positions.append(code[-1])
            continue
        name = exercise.grade_id.split("-", 2)[2]
        hit = next((i for i in code if i >= start and any(
            m == name for m in CHECK_CALL.findall(_source(cells[i])))), None)
        if hit is None:
            return None
        positions.append(hit)
        start = hit + 1
    return positions


def grade_one(path: Path, lesson_nb: dict, lesson: str, profile: str, timeout: float) -> Row:
    """Grade one submission in a fresh temporary folder, killing it (and its kernel) after `timeout` seconds."""
    columns = {e.grade_id: (None, "not run") for e in graded_cells(lesson_nb, lesson)}
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="kitlib-grade-") as tmp:
        work = Path(tmp)
        for sub in ("home", "tmp", "cache", "results", "runtime"):
            (work / sub).mkdir()
        prepared, problem = _prepare(path, lesson_nb, lesson, work)
        if prepared is None:
            return Row(path.name, problem, columns, 0.0)
        results = work / "verdicts.jsonl"
        child = subprocess.Popen(
            [sys.executable, "-m", "kitlib.course.grading", str(prepared), str(results), str(timeout)],
            cwd=work, env=clean_environment(work, profile), start_new_session=True,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            _, stderr = child.communicate(timeout=timeout)
            status = "graded" if child.returncode == 0 else _crash_reason(stderr)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)  # the kernel is in the same process group
            child.communicate()
            status = f"timed out after {timeout:g} s"
        if results.exists():
            for line in results.read_text(encoding="utf-8").splitlines():
                record = json.loads(line)
                columns[record["grade_id"]] = (record["passed"], record["message"])
    if status != "graded":
        columns = {k: v if v[0] is not None else (False, status) for k, v in columns.items()}
    return Row(path.name, status, columns, time.perf_counter() - start)


def _crash_reason(stderr: str) -> str:
    """One line saying why the grading process stopped early."""
    if "DeadKernelError" in stderr or "Kernel died" in stderr:
        return "crashed: the kernel died"
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    return f"crashed: {lines[-1][:200]}" if lines else "crashed"


def find_lesson(lesson: str, notebooks: Path) -> Path:
    """The instructor notebook of a lesson given as `NN` or as a path."""
    if Path(lesson).suffix == ".ipynb":
        return Path(lesson)
    found = sorted(notebooks.glob(f"{int(lesson):02d}_*.ipynb")) if lesson.isdigit() else []
    if not found:
        known = ", ".join(p.name[:2] for p in sorted(notebooks.glob("[0-9][0-9]_*.ipynb")))
        raise ValueError(f"No lesson {lesson!r} in {notebooks}: give its number ({known}) or a notebook path.")
    return found[0]


def grade(submissions: Path, lesson_path: Path, out: Path, profile: str = "smoke", timeout: float = 600) -> list[Row]:
    """Grade every `.ipynb` under `submissions` against one lesson; write gradebook.csv and summary.md in `out`."""
    submissions, out = Path(submissions), Path(out)
    if not submissions.is_dir():
        raise ValueError(f"{submissions} is not a folder: pass the folder that holds the submitted .ipynb files.")
    files = sorted(p for p in submissions.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
    if not files:
        raise ValueError(f"No .ipynb files under {submissions}.")
    if out.resolve().is_relative_to(submissions.resolve()):
        raise ValueError(f"Write the gradebook outside the submissions folder (got --out {out}).")
    lesson = lesson_number(lesson_path)
    lesson_nb = mark(json.loads(lesson_path.read_text(encoding="utf-8")), lesson)
    exercises = graded_cells(lesson_nb, lesson)
    rows = []
    for n, path in enumerate(files, start=1):
        print(f"[{n}/{len(files)}] {path.relative_to(submissions)} ...", end=" ", flush=True)
        row = grade_one(path, lesson_nb, lesson, profile, timeout)
        row.submission = str(path.relative_to(submissions))
        rows.append(row)
        print(f"{row.status}, {row.score()}/{len(exercises)} passed ({row.seconds:.0f} s)", flush=True)
    write_gradebook(rows, exercises, out, lesson_path.name, profile)
    return rows


def write_gradebook(rows: list[Row], exercises: list[Exercise], out: Path, lesson: str, profile: str) -> None:
    """gradebook.csv (one row per submission, one column per graded cell) and summary.md (pass rates)."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "gradebook.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["submission", "status", "score", "out_of", "seconds",
                         *[e.column for e in exercises], *[f"{e.column} message" for e in exercises]])
        for row in rows:
            marks = [row.verdicts[e.grade_id] for e in exercises]
            writer.writerow([row.submission, row.status, row.score(), len(exercises), f"{row.seconds:.1f}",
                             *["pass" if ok else "fail" for ok, _ in marks], *[msg for _, msg in marks]])
    lines = [f"# Gradebook: {lesson}", "", f"{len(rows)} submissions, profile {profile}, network off.", "",
             "| graded cell | passed | pass rate |", "| --- | --- | --- |"]
    for e in exercises:
        passed = sum(1 for row in rows if row.verdicts[e.grade_id][0])
        lines.append(f"| {e.column} | {passed}/{len(rows)} | {passed / len(rows):.0%} |")
    lines += ["", "| submission | status | score |", "| --- | --- | --- |"]
    lines += [f"| {row.submission} | {row.status} | {row.score()}/{len(exercises)} |" for row in rows]
    (out / "summary.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    run_submission(Path(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3]))
