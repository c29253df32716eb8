"""Grading a class: nbgrader cell metadata for the lessons, and a gradebook from a folder of submissions.

Cells are recognised by content, so the metadata is written by `python -m kitlib course mark` and kept in step by
a test, never by hand:

- a code cell holding `### BEGIN SOLUTION` is an nbgrader *solution* cell (`lNN-exK-solution`);
- the code cell after it that calls `kitlib.checks.<name>` is an autograded, locked *test* cell worth one
  point (`lNN-exK-<name>`);
- the lesson's last code cell (its closing assertions) is an autograded test cell too (`lNN-closing`);
- markdown cells are read-only (`locked`).

`grade(...)` runs every submitted notebook headless, each in its own kernel inside a sandbox
(kitlib.course.sandbox: own namespaces, private file view, unprivileged, rlimits), and writes a gradebook: one CSV
row per submission, one column per exercise. Submissions are untrusted code: the grader keeps everything the
verdicts depend on (the notebook client, the check cells it sends, the replies it reads, the gradebook) outside
the sandbox, and a malformed submission costs its own row only.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import functools
import io
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterable

from kitlib import _fs, course
from kitlib.course import notebooks, sandbox
from kitlib.course.notebooks import BEGIN as SOLUTION_MARK, source as _source

CHECK_CALL = re.compile(r"kitlib\.checks\.(?!(?:call|hint)\b)(\w+)\(")
PASSED = "Check passed"
DONE = "kitlib-check-done"  # + the nonce of one run of one graded cell: printed only after its code returned
MAX_SUBMISSION_BYTES = 64 << 20
MESSAGE_CHARS = 4000  # of a failed check's message kept in the gradebook: expected, received and hint
GRADEBOOK_JSON = "gradebook.json"  # the class's rows, which a re-grade of one student or file merges into
LESSON_FILE = re.compile(r"^\d\d(?:_.*)?\.ipynb$")  # a submission named after its lesson: 01_word_embeddings.ipynb
MAX_MESSAGE_BYTES = 64 << 20  # a larger kernel message is refused by zmq (the cell then times out)


def lesson_number(path: Path) -> str:
    """The two-digit lesson number a lesson file starts with (`01_word_embeddings.ipynb` -> `01`)."""
    match = re.match(r"(\d\d)_", Path(path).name)
    if not match:
        raise ValueError(f"{path} is not a lesson file: lesson notebooks are named NN_slug.ipynb.")
    return match.group(1)


def _meta(grade_id: str, *, grade: bool = False, solution: bool = False, locked: bool = False,
          points: int | None = None) -> dict[str, Any]:
    """An nbgrader (schema 3) cell metadata block."""
    meta: dict[str, Any] = {"grade": grade, "grade_id": grade_id, "locked": locked, "schema_version": 3,
                            "solution": solution, "task": False}
    if points is not None:
        meta["points"] = points
    return dict(sorted(meta.items()))  # the key order nbformat writes


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
        notebook = notebooks.read(path)
        marked = mark(notebook, lesson_number(path))
        if marked != notebook:
            stale.append(path)
            if not check:
                notebooks.write(path, marked)
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


def graded_source(exercise: Exercise, nonce: str) -> str:
    """What the grader runs for a graded cell: fresh checks, no custom exception handler, then a done line.

    The kit's check modules are dropped from `sys.modules` and imported again from the (read-only) kit, so a
    submission that replaced a check function or `expect` is checked by the installed code; the done line with a
    nonce the submission never saw is printed only if the instructor's code returned, so an exception that a
    custom handler swallows, or a check that never ran, is a fail.
    """
    return "\n".join([
        "import sys as _kit_sys",
        "for _kit_name in [n for n in list(_kit_sys.modules) if n.split('.')[:2] == ['kitlib', 'checks']]:",
        "    del _kit_sys.modules[_kit_name]",
        "get_ipython().set_custom_exc((), None)",
        "import kitlib, kitlib.checks",
        exercise.source.rstrip("\n"),
        f"print({DONE!r}, {nonce!r})",
        "",
    ])


def _grade_id(cell: Any) -> str | None:
    """A submitted cell's nbgrader grade_id when its metadata is well formed, else None."""
    meta = cell.get("metadata") if isinstance(cell, dict) else None
    nbgrader = meta.get("nbgrader") if isinstance(meta, dict) else None
    grade_id = nbgrader.get("grade_id") if isinstance(nbgrader, dict) else None
    return grade_id if isinstance(grade_id, str) else None


def clean_environment(workdir: Path, profile: str, isolated: bool = True) -> dict[str, str]:
    """The environment a submission runs in: no inherited credentials or instructor paths, network off.

    `workdir` is the submission's writable folder as the kernel sees it (inside the sandbox: /work).
    """
    kit_parent = "/kit" if isolated else str(Path(__file__).resolve().parents[2])
    keep = {k: os.environ[k] for k in ("LANG", "LC_ALL", "TZ") if k in os.environ}
    path = os.pathsep.join([str(Path(sys.executable).parent), "/usr/local/bin", "/usr/bin", "/bin"])
    return {**keep, "PATH": path, "HOME": str(workdir / "home"), "TMPDIR": str(workdir / "tmp"),
            "KITLIB_OFFLINE": "1", "KITLIB_PROFILE": profile, "KITLIB_PROGRESS": "0",
            "KITLIB_CACHE": str(workdir / "cache"), "KITLIB_RESULTS": str(workdir / "results"),
            "MPLBACKEND": "Agg", "PYTHONPATH": kit_parent, "PYTHONNOUSERSITE": "1",
            "JUPYTER_RUNTIME_DIR": str(workdir / "runtime"), "PYTHONDONTWRITEBYTECODE": "1"}


@functools.lru_cache(maxsize=1)
def isolation() -> tuple[tuple[str, ...], str]:
    """(`unshare` arguments for the sandbox's namespaces, a sentence saying what isolation this machine gives)."""
    prefix = ("unshare", "--pid", "--fork", "--kill-child", "--mount", "--net", "--ipc", "--uts")
    if os.geteuid() != 0:
        prefix += ("--user", "--map-root-user")
    try:
        ok = shutil.which("unshare") and subprocess.run([*prefix, "true"], capture_output=True,
                                                        timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        ok = False
    if ok:
        who = "user 65534" if os.geteuid() == 0 else "a nested user namespace"
        return prefix, (f"sandboxed: own PID, mount, network and IPC namespaces, private file view, {who}, rlimits")
    return (), ("NOT sandboxed (this machine cannot create namespaces with unshare): rlimits and a clean "
                "environment only; submissions can read and write what the grader's user can")


def _read_only_paths(kit: Path) -> list[tuple[str, str]]:
    """(host path, path in the sandbox) of what a kernel sees, read-only: the system, Python, its site folders,
    the kit's package at /kit/kitlib and the files its links point to (e.g. the data manifest), nothing else.

    A folder reached through a link is bound where it lies too: a virtual environment's scripts (`tensorboard`)
    name its real path on their #! line."""
    candidates = ["/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/etc", sys.prefix, sys.base_prefix,
                  sys.exec_prefix, *[p for p in sys.path if p and "site-packages" in p or "dist-packages" in p]]
    try:
        checkout = course.checkout()  # the instructor's clone: no folder holding it is bound
    except course.CheckoutError:
        checkout = None  # an installed kitlib (a wheel in site-packages): nothing of the course lies beside it
    keep = []
    for path in dict.fromkeys(found for p in candidates for found in (os.path.abspath(p), os.path.realpath(p))):
        hides = checkout is not None and checkout.is_relative_to(path)
        if os.path.isdir(path) and not hides and not any(path.startswith(k + "/") for k in keep):
            keep.append(path)
    binds = [(path, path) for path in keep] + [(str(kit), "/kit/kitlib")]
    for link in (p for p in kit.rglob("*") if p.is_symlink()):
        target = link.resolve()
        if checkout and target.is_file() and target.is_relative_to(checkout) and not target.is_relative_to(kit):
            binds.append((str(target), "/kit/" + target.relative_to(checkout).as_posix()))
    return binds


def launcher(host: Path, profile: str, limits: sandbox.Limits) -> list[str]:
    """The command prefix that starts a program in a fresh sandbox whose host-side folder is `host`."""
    prefix, _ = isolation()
    isolated = bool(prefix)
    runtime = host / "runtime"
    runtime.mkdir()
    inside = Path("/work") if isolated else host / "work"
    if not isolated:  # inside the sandbox these are made in its tmpfs
        for sub in ("home", "tmp", "cache", "results"):
            (inside / sub).mkdir(parents=True)
    if isolated and os.geteuid() == 0:
        os.chown(runtime, sandbox.NOBODY, sandbox.NOBODY)
    (host / "root").mkdir()
    kit = Path(__file__).resolve().parents[1]
    env = clean_environment(inside, profile, isolated)
    if isolated:
        env.update(HOME="/home/student", TMPDIR="/tmp", JUPYTER_RUNTIME_DIR="/tmp")
    config = {"isolate": isolated, "root": str(host / "root"), "read_only": _read_only_paths(kit), "runtime": str(runtime), "uid": sandbox.NOBODY if os.geteuid() == 0 else 0,
              "user_namespace": os.geteuid() != 0, "workdir": str(inside), "env": env,
              "limits": dataclasses.asdict(limits),
              "make": [str(inside / sub) for sub in ("cache", "results")] if isolated else []}
    return [*prefix, sys.executable, "-I", "-S", sandbox.__file__, json.dumps(config)]


def kernel_manager_class(host: Path, profile: str, limits: sandbox.Limits) -> type:
    """A jupyter_client AsyncKernelManager class whose kernel starts in a sandbox and talks over Unix sockets.

    The notebook client makes and owns the manager, so it always shuts the kernel down, killing `unshare` and with
    it the sandbox's PID namespace."""
    import zmq.asyncio
    from jupyter_client.manager import AsyncKernelManager

    command = launcher(host, profile, limits)
    context = zmq.asyncio.Context()
    context.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)  # one message cannot flood the grader

    class SandboxedKernel(AsyncKernelManager):
        """A kernel started through the sandbox script, over Unix sockets, with the size-capped zmq context."""

        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.transport, self.ip = "ipc", str(host / "runtime" / "kernel")
            self.connection_file, self.context = str(host / "runtime" / "kernel.json"), context

        def format_kernel_cmd(self, extra_arguments: list[str] | None = None) -> list[str]:
            return [*command, *super().format_kernel_cmd(extra_arguments)]

        def client(self, **kwargs: Any) -> Any:
            return super().client(context=context, **kwargs)

        def write_connection_file(self, **kwargs: Any) -> Any:
            written = super().write_connection_file(**kwargs)
            if os.geteuid() == 0 and isolation()[0]:  # the kernel reads it as user 65534
                os.chown(self.connection_file, sandbox.NOBODY, sandbox.NOBODY)
            return written

    return SandboxedKernel


@dataclasses.dataclass
class Row:
    """One submission's line of the gradebook."""

    submission: str
    status: str
    verdicts: dict[str, tuple[bool | None, str]]
    seconds: float
    flags: list[str] = dataclasses.field(default_factory=list)
    student: str = ""
    submitted: str = ""  # the file's modification time, UTC
    key: str = ""  # the file's absolute path: a re-graded file replaces its own row

    def score(self) -> int:
        """Number of graded cells that passed."""
        return sum(1 for ok, _ in self.verdicts.values() if ok)


def _solution_blocks(lesson_nb: dict, lesson: str) -> dict[str, str]:
    """Each exercise's instructor solution (the lines between the markers, whitespace-normalised), by exercise."""
    blocks = {}
    for cell, role in zip(lesson_nb["cells"], cell_roles(lesson_nb, lesson)):
        if role and role["solution"]:
            body = _source(cell).split(SOLUTION_MARK, 1)[1].split(notebooks.END, 1)[0]
            blocks[role["grade_id"].split("-")[1]] = _normalised(body)
    return blocks


def _normalised(text: str) -> str:
    """Code with blank lines and surrounding whitespace dropped, for verbatim comparison."""
    return "\n".join(line.strip() for line in text.splitlines() if line.strip())


def copied_solutions(cells: list, lesson_nb: dict, lesson: str) -> list[str]:
    """The exercises whose instructor solution a submission holds verbatim."""
    code = "\n".join(_normalised(_source(c)) for c in cells if isinstance(c, dict) and c.get("cell_type") == "code")
    return [name for name, block in _solution_blocks(lesson_nb, lesson).items() if block and block in code]


def _read_submission(path: Path) -> str:
    """A submitted file's text, refusing links, special files and files over MAX_SUBMISSION_BYTES."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not (info.st_mode & 0o170000 == 0o100000):
            raise notebooks.NotebookError(f"{path.name} is not a regular file.")
        if info.st_size > MAX_SUBMISSION_BYTES:
            raise notebooks.NotebookError(f"{path.name} is {info.st_size:,} bytes, over the "
                                          f"{MAX_SUBMISSION_BYTES:,} a notebook may have.")
        data = handle.read(MAX_SUBMISSION_BYTES + 1)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise notebooks.NotebookError(f"{path.name} is not UTF-8 text ({exc.reason} at byte {exc.start}).") from None


def _prepare(path: Path, lesson_nb: dict, lesson: str) -> tuple[Any, list[str], str, list[str]]:
    """(the notebook to run, its graded cells' grade_ids by position, problem, the check cells put back that the
    student deleted): graded cells restored from the lesson."""
    try:
        submitted = notebooks.from_text(_read_submission(path), path.name, validate=True)
    except OSError as exc:
        return None, [], f"not a notebook (cannot read it: {exc.strerror or exc})", []
    except notebooks.NotebookError as exc:
        return None, [], str(exc).replace(f"{path.name} is ", "", 1), []
    cells = submitted.cells
    expected = graded_cells(lesson_nb, lesson)
    positions, restored = _graded_positions(cells, expected), []
    if positions is None:
        restored = _restore_checks(cells, expected)
        positions = _graded_positions(cells, expected) if restored else None
    if positions is None:
        others = sorted({g[1:3] for g in map(_grade_id, cells) if g and re.match(r"l\d\d-", g)} - {lesson})
        what = f"it carries lesson {', '.join(others)}'s cells" if others else "its check cells are missing or out of order"
        return None, [], f"wrong lesson: {what}, expected lesson {lesson}", []
    roles: list[str] = [""] * len(cells)
    for index, exercise in zip(positions, expected):  # graded cells run the instructor's code, as in nbgrader
        cells[index]["source"] = exercise.source
        cells[index]["metadata"] = {}
        roles[index] = exercise.grade_id
    for index, cell in enumerate(cells):
        if cell.get("cell_type") == "code":
            cell["outputs"] = []
    return submitted, roles, "", restored


def _check_cell(cells: list, code: list[int], name: str, start: int) -> int | None:
    """The first code cell at or after `start` that calls the check `name`, or None."""
    return next((i for i in code if i >= start and name in CHECK_CALL.findall(_source(cells[i]))), None)


def _restore_checks(cells: list, expected: list[Exercise]) -> list[str]:
    """Put back the check cells a student deleted, each right after the cell defining what it checks; returns their
    columns. Nothing is restored (the submission is then another lesson's) unless every such definition is there."""
    code = [i for i, c in enumerate(cells) if c.get("cell_type") == "code"]
    plan, start = [], 0
    for exercise in expected:
        if exercise.grade_id.endswith("-closing"):
            continue
        check = _check_cell(cells, code, exercise.grade_id.split("-", 2)[2], start)
        if check is not None:
            start = check + 1
            continue
        defined = "|".join(map(re.escape, re.findall(r"kitlib\.checks\.\w+\(\s*(\w+)", exercise.source)))
        pattern = re.compile(rf"^(?:(?:def|class) ({defined})\b|({defined})\s*=)", re.M) if defined else None
        definition = next((i for i in code if i >= start and pattern and pattern.search(_source(cells[i]))), None)
        if definition is None:
            return []
        plan.append((definition + 1, exercise))
        start = definition + 1
    from nbformat import v4

    for index, exercise in reversed(plan):
        cells.insert(index, v4.new_code_cell(exercise.source))
    return [exercise.column for _, exercise in plan]


def _graded_positions(cells: list, expected: list[Exercise]) -> list[int] | None:
    """Where the lesson's graded cells sit in a submission: by nbgrader grade_id, else by check name in order."""
    code = [i for i, c in enumerate(cells) if c.get("cell_type") == "code"]
    by_id: dict[str, int] = {}
    for index, cell in enumerate(cells):
        grade_id = _grade_id(cell)
        if grade_id is not None:
            by_id.setdefault(grade_id, index)
    if all(e.grade_id in by_id and cells[by_id[e.grade_id]].get("cell_type") == "code" for e in expected) \
            and len({by_id[e.grade_id] for e in expected}) == len(expected):
        return [by_id[e.grade_id] for e in expected]
    positions, start = [], 0
    for exercise in expected:
        if exercise.grade_id.endswith("-closing"):
            if not code or (positions and code[-1] in positions):
                return None
            positions.append(code[-1])
            continue
        hit = _check_cell(cells, code, exercise.grade_id.split("-", 2)[2], start)
        if hit is None:
            return None
        positions.append(hit)
        start = hit + 1
    return positions


def _verdict(outputs: list[dict], done: bool, reply_status: str | None) -> tuple[bool, str]:
    """(passed, message) of a graded cell run by the grader, from the replies it collected for that cell alone."""
    for output in outputs:
        if output.get("output_type") == "error":
            message = f"{output.get('ename', 'Error')}: {output.get('evalue', '')}".strip()
            return False, message[:MESSAGE_CHARS] if message else "error"
    if reply_status != "ok" or not done:
        return False, "the check did not finish (an error was hidden, or the cell was stopped)"
    text = "".join(_source({"source": o.get("text", "")}) for o in outputs if o.get("output_type") == "stream")
    line = next((l for l in text.splitlines() if l.startswith(PASSED)), "")
    return True, line[:300] or "ran without error"


def _client_class() -> type:
    """An nbclient NotebookClient that keeps at most `output_bytes` of each cell's output and notes done lines."""
    import nbclient

    class CappedClient(nbclient.NotebookClient):
        """Outputs past the cap are dropped as they arrive; the done line of a graded cell is noted first."""

        def __init__(self, *args: Any, cap: int, nonces: dict[int, str], **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.cap, self.nonces, self.done, self.replies = cap, nonces, set(), {}
            self.kept: dict[int, int] = {}
            self.on_cell_executed = self._note_reply

        def _note_reply(self, cell: Any, cell_index: int, execute_reply: dict) -> None:
            self.replies[cell_index] = execute_reply.get("content", {}).get("status")

        def output(self, outs: list, msg: dict, display_id: str | None, cell_index: int) -> Any:
            content = msg.get("content", {})
            text = content.get("text", "") if msg.get("msg_type") == "stream" else ""
            nonce = self.nonces.get(cell_index)
            if nonce and isinstance(text, str) and f"{DONE} {nonce}" in text:
                self.done.add(cell_index)
                content["text"] = text.replace(f"{DONE} {nonce}\n", "").replace(f"{DONE} {nonce}", "")
            size = len(json.dumps(content, default=str))
            used = self.kept.get(cell_index, 0)
            if used + size > self.cap:
                self.kept[cell_index] = self.cap
                return None
            self.kept[cell_index] = used + size
            return super().output(outs, msg, display_id, cell_index)

    return CappedClient


def _tail(path: Path, limit: int = 16384) -> str:
    """The last `limit` bytes of a log file, as text."""
    try:
        with open(path, "rb") as handle:
            handle.seek(max(0, os.fstat(handle.fileno()).st_size - limit))
            return handle.read().decode("utf-8", "replace")
    except OSError:
        return ""


def grade_one(path: Path, lesson_nb: dict, lesson: str, profile: str, timeout: float,
              limits: sandbox.Limits | None = None) -> Row:
    """Grade one submission: its kernel in a fresh sandbox, the verdicts read from the replies to the check cells."""
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    limits = limits or sandbox.Limits(cpu_seconds=int(timeout) + 5)
    columns: dict[str, tuple[bool | None, str]] = {e.grade_id: (None, "not run") for e in graded_cells(lesson_nb, lesson)}
    if path.is_symlink():
        row = Row(path.name, "refused: the submission is a link, not a notebook file; ask for the file itself",
                  {k: (False, "not graded: link") for k in columns}, 0.0, ["link"])
        return row
    notebook, roles, problem, restored = _prepare(path, lesson_nb, lesson)
    if notebook is None:
        return Row(path.name, problem, {k: (False, problem) for k in columns}, 0.0)
    flags = [f"copies the instructor's solution verbatim ({', '.join(found)})"
             for found in [copied_solutions(notebook.cells, lesson_nb, lesson)] if found]
    flags += [f"deleted check cell restored from the lesson ({', '.join(restored)})"] if restored else []
    nonces = {i: secrets.token_hex(16) for i, role in enumerate(roles) if role}
    for index, nonce in nonces.items():
        notebook.cells[index]["source"] = graded_source(
            next(e for e in graded_cells(lesson_nb, lesson) if e.grade_id == roles[index]), nonce)
    start = time.perf_counter()
    status = "graded"
    with tempfile.TemporaryDirectory(prefix="kitlib-grade-") as tmp:
        host = Path(tmp)
        os.chmod(host, 0o711)
        client = _client_class()(notebook, kernel_manager_class=kernel_manager_class(host, profile, limits),
                                 kernel_name="python3", timeout=int(timeout), allow_errors=True,
                                 shutdown_kernel="immediate", cap=limits.output_bytes, nonces=nonces,
                                 resources={"metadata": {"path": str(host)}})
        log = open(host / "kernel.log", "wb")  # noqa: SIM115  (closed below; the kernel's FSIZE limit caps it)
        try:
            with client.setup_kernel(stdout=log, stderr=log):
                for index, cell in enumerate(notebook.cells):
                    if cell.get("cell_type") != "code":
                        continue
                    remaining = timeout - (time.perf_counter() - start)
                    if remaining <= 0:
                        raise CellTimeoutError("out of time")
                    client.timeout = max(1, int(remaining))
                    client.execute_cell(cell, index)
                    if roles[index]:
                        columns[roles[index]] = _verdict(cell.get("outputs", []), index in client.done,
                                                         client.replies.get(index))
        except CellTimeoutError:
            status = f"timed out after {timeout:g} s"
        except (DeadKernelError, RuntimeError):  # RuntimeError: it died before replying to kernel_info
            status = _crash_reason(_tail(host / "kernel.log"))
        except Exception as exc:  # noqa: BLE001  (any failure of one submission is that submission's row)
            status = f"crashed: {type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
        finally:
            log.close()
    if status != "graded":
        columns = {k: v if v[0] is not None else (False, status) for k, v in columns.items()}
    return Row(path.name, status, _closing_counted(columns), time.perf_counter() - start, flags)


def _closing_counted(columns: dict[str, tuple[bool | None, str]]) -> dict[str, tuple[bool | None, str]]:
    """The closing assertions' point counts only when every exercise passed: the lesson's run then rests on the
    student's own answers, and a wrong answer that happens to satisfy the closing checks earns nothing twice."""
    closing = next((k for k in columns if k.endswith("-closing")), None)
    failed = [k.split("-", 1)[1] for k, (ok, _) in columns.items() if k != closing and not ok]
    if closing is None or not failed or not columns[closing][0]:
        return columns
    return {**columns, closing: (False, f"not counted: the closing assertions ran, but count only when every "
                                        f"exercise passed (not passed: {', '.join(failed)})")}


def _crash_reason(log: str) -> str:
    """One line saying why the kernel stopped early."""
    lines = [line for line in log.strip().splitlines() if re.match(r"^\w*(Error|Exception|Killed)\b", line.strip())]
    return f"crashed: the kernel died ({lines[-1][:200]})" if lines else "crashed: the kernel died"


def find_lesson(lesson: str, notebooks_dir: Path) -> Path:
    """The instructor notebook of a lesson given as `NN` or as a path."""
    if Path(lesson).suffix == ".ipynb":
        return Path(lesson)
    if not notebooks_dir.is_dir():
        raise ValueError(f"{notebooks_dir} is not a folder of lessons: pass --notebooks (the folder of the instructor "
                         "notebooks) or give --lesson as the lesson notebook's path.")
    found = sorted(notebooks_dir.glob(f"{int(lesson):02d}_*.ipynb")) if lesson.isdigit() else []
    if not found:
        known = ", ".join(p.name[:2] for p in sorted(notebooks_dir.glob("[0-9][0-9]_*.ipynb")))
        raise ValueError(f"No lesson {lesson!r} in {notebooks_dir}: give its number ({known}) or a notebook path.")
    return found[0]


def submission_files(submissions: Path) -> list[Path]:
    """Every `.ipynb` under `submissions` (links listed, never followed; checkpoints skipped), sorted."""
    found = []
    for folder, dirs, files in os.walk(submissions, followlinks=False):
        dirs[:] = sorted(d for d in dirs if d != ".ipynb_checkpoints")
        found += [Path(folder) / name for name in files if name.endswith(".ipynb")]
    return sorted(found)


def student_id(path: Path, root: Path) -> str:
    """Who submitted `path`: its first folder under the graded folder (`erin/01_word_embeddings.ipynb`: erin), else
    its name; a file named after a lesson (`01_...ipynb`) belongs to the folder holding it, whatever was graded."""
    relative = path.relative_to(root)
    if len(relative.parts) > 1:
        return relative.parts[0]
    return path.parent.name if LESSON_FILE.match(path.name) and path.parent.name else path.stem


def _previous_rows(out: Path, lesson: str, exercises: list[Exercise]) -> dict[str, Row]:
    """The rows of the class gradebook already in `out` (gradebook.json), by file; refused if of another lesson or
    of another version of it (other graded cells)."""
    saved = out / GRADEBOOK_JSON
    if not saved.is_file():
        return {}
    try:
        book = json.loads(saved.read_text(encoding="utf-8"))
        rows = [Row(**{**row, "verdicts": {k: tuple(v) for k, v in row["verdicts"].items()}}) for row in book["rows"]]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"{saved} is not a gradebook this kit can read ({type(exc).__name__}): move it away, or "
                         "choose another --out.") from None
    if book.get("lesson") != lesson:
        raise ValueError(f"--out {out} holds the gradebook of {book.get('lesson')}, not {lesson}: give each lesson "
                         "its own gradebook folder.")
    wanted = {e.grade_id for e in exercises}
    if any(set(row.verdicts) != wanted for row in rows):
        raise ValueError(f"--out {out} holds a gradebook of {lesson} with other graded cells than the lesson has now: "
                         "re-grade the whole class into a new --out folder.")
    return {row.key: row for row in rows}


def grade(submissions: Path, lesson_path: Path, out: Path, profile: str = "smoke", timeout: float = 600,
          limits: sandbox.Limits | None = None) -> list[Row]:
    """Grade every `.ipynb` under `submissions` (a folder, or one file to re-grade) against one lesson; returns the
    rows graded now. The class gradebook in `out` keeps every other row and replaces the rows of the files graded."""
    submissions, out = Path(submissions), Path(out)
    if submissions.suffix == ".ipynb" and not submissions.is_dir():
        if not submissions.exists() and not submissions.is_symlink():
            raise ValueError(f"{submissions} does not exist: pass a submitted .ipynb file or the folder of them.")
        files, root = [submissions], submissions.parent
    elif submissions.is_dir():
        files, root = submission_files(submissions), submissions
    else:
        raise ValueError(f"{submissions} is not a folder: pass the folder that holds the submitted .ipynb files, or "
                         "one .ipynb file to re-grade.")
    if not files:
        raise ValueError(f"No .ipynb files under {submissions}.")
    if out.resolve().is_relative_to(root.resolve()):
        raise ValueError(f"Write the gradebook outside the submissions folder (got --out {out}).")
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise ValueError(f"--out {out} is a link or a file: give a folder of its own for the gradebook.")
    lesson = lesson_number(lesson_path)
    try:
        lesson_nb = mark(notebooks.read(lesson_path), lesson)
    except notebooks.NotebookError as exc:
        raise ValueError(str(exc)) from None
    exercises = graded_cells(lesson_nb, lesson)
    previous = _previous_rows(out, lesson_path.name, exercises)
    print(f"isolation: {isolation()[1]}", flush=True)
    rows = []
    for n, path in enumerate(files, start=1):
        key = os.path.abspath(path)
        name = previous[key].submission if key in previous else str(path.relative_to(root))
        print(f"[{n}/{len(files)}] {name!r} ...", end=" ", flush=True)
        row = grade_one(path, lesson_nb, lesson, profile, timeout, limits)
        row.submission, row.key, row.submitted = name, key, _modified(path)
        row.student = previous[key].student if key in previous else student_id(path, root)
        rows.append(row)
        print(f"{row.status[:200]!r}, {row.score()}/{len(exercises)} passed ({row.seconds:.0f} s)", flush=True)
    book = sorted({**previous, **{row.key: row for row in rows}}.values(), key=lambda r: (r.student, r.submission))
    write_gradebook(book, exercises, out, lesson_path.name, profile)
    return rows


def _modified(path: Path) -> str:
    """When the file was last changed, in UTC to the second (a link: the link's own time)."""
    stamp = os.lstat(path).st_mtime
    return datetime.datetime.fromtimestamp(stamp, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def csv_cell(value: object) -> str:
    """A value safe in a spreadsheet: text that a spreadsheet would read as a formula gets a leading quote."""
    text = str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def md_cell(value: object) -> str:
    """Text safe in one Markdown table cell: one line, pipes and markup characters escaped."""
    text = " ".join(str(value).split())
    return re.sub(r"([\\`*_{}\[\]<>()#+!|~])", r"\\\1", text)


def feedback_name(row: Row, taken: set[str]) -> str:
    """A file name for one student's feedback: their id made safe, with the submission's name if taken."""
    name = re.sub(r"[^\w.-]+", "_", row.student or Path(row.submission).stem).strip("._") or "submission"
    if name in taken:
        name += "--" + re.sub(r"[^\w.-]+", "_", Path(row.submission).stem)
    taken.add(name)
    return name + ".md"


def feedback(row: Row, exercises: list[Exercise], lesson: str) -> str:
    """One student's feedback in Markdown: each graded cell passed or not, and its full message (no solutions)."""
    lines = [f"# Feedback: {md_cell(lesson)}, {md_cell(row.student)}", "",
             f"Submission `{md_cell(row.submission)}`, last changed {row.submitted}: {md_cell(row.status)}, "
             f"{row.score()} of {len(exercises)} graded cells passed."]
    if row.flags:
        lines += ["", "Flags: " + md_cell("; ".join(row.flags))]
    fence = "~~~~"
    for e in exercises:
        ok, message = row.verdicts[e.grade_id]
        lines += ["", f"## {md_cell(e.column)}: {'passed' if ok else 'not passed'}", "", fence + "text",
                  message.replace(fence, "~ ~ ~ ~"), fence]
    return "\n".join(lines) + "\n"


def write_gradebook(rows: list[Row], exercises: list[Exercise], out: Path, lesson: str, profile: str) -> None:
    """The class gradebook in `out`, each file written atomically: gradebook.csv (every message in full), lms.csv
    (a student column, one 0/1 column per graded cell and the total: the generic CSV Canvas and Moodle import),
    summary.md, one feedback file per submission (feedback/), and gradebook.json, which a re-grade merges into."""
    try:
        (out / "feedback").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _fs.storage_error(exc, f"create the gradebook folder {out}") from exc
    table, lms = io.StringIO(newline=""), io.StringIO(newline="")
    writer, lms_writer = csv.writer(table), csv.writer(lms)
    writer.writerow(["student", "submission", "submitted", "status", "score", "out_of", "seconds", "flags",
                     *[e.column for e in exercises], *[f"{e.column} message" for e in exercises]])
    lms_writer.writerow(["student", *[e.column for e in exercises], "total"])
    taken: set[str] = set()
    for row in rows:
        marks = [row.verdicts[e.grade_id] for e in exercises]
        writer.writerow([csv_cell(v) for v in [row.student, row.submission, row.submitted, row.status, row.score(),
                                                len(exercises), f"{row.seconds:.1f}", "; ".join(row.flags),
                                                *["pass" if ok else "fail" for ok, _ in marks],
                                                *[msg for _, msg in marks]]])
        lms_writer.writerow([csv_cell(row.student), *[int(bool(ok)) for ok, _ in marks], row.score()])
        _fs.write_atomically(out / "feedback" / feedback_name(row, taken), feedback(row, exercises, lesson))
    lines = [f"# Gradebook: {md_cell(lesson)}", "", f"{len(rows)} submissions, profile {profile}, network off; "
             f"{isolation()[1]}.", "", "| graded cell | passed | pass rate |", "| --- | --- | --- |"]
    for e in exercises:
        passed = sum(1 for row in rows if row.verdicts[e.grade_id][0])
        lines.append(f"| {md_cell(e.column)} | {passed}/{len(rows)} | {passed / len(rows):.0%} |")
    lines += ["", "| student | submission | status | score | flags |", "| --- | --- | --- | --- | --- |"]
    lines += [f"| {md_cell(row.student)} | {md_cell(row.submission)} | {md_cell(row.status)} | "
              f"{row.score()}/{len(exercises)} | {md_cell('; '.join(row.flags))} |" for row in rows]
    _fs.write_atomically(out / "gradebook.csv", table.getvalue())
    _fs.write_atomically(out / "lms.csv", lms.getvalue())
    _fs.write_atomically(out / "summary.md", "\n".join(lines) + "\n")
    _fs.write_atomically(out / GRADEBOOK_JSON, json.dumps(
        {"lesson": lesson, "profile": profile, "rows": [dataclasses.asdict(row) for row in rows]}, indent=1))
