"""The course folder's nbgrader_config.py (`kitlib course nbgrader-config`): the kit's solution markers and stub, a
per-cell timeout sized to the profile, and the environment nbgrader and its kernels run the lessons in.

nbgrader has no setting for its kernels' environment: a kernel inherits the environment of the nbgrader process
that starts it, and nbgrader runs this file as Python when it starts. So the file sets the profile, the network
off and the progress bars off in `os.environ`, and puts the folder of the Python running nbgrader first on PATH:
nbgrader runs `alembic` from PATH, which in a virtual environment that was never activated is found only that way.
"""

from __future__ import annotations

from pathlib import Path

from kitlib import _fs, progress, runtime
from kitlib.course import tables
from kitlib.course.notebooks import BEGIN, END, STUB

FILE = "nbgrader_config.py"
HEADER = "# Written by `kitlib course nbgrader-config`: run it again to change these settings."
SAFETY = 4  # nbgrader's per-cell timeout is this many times the longest a lesson cell may take in the profile


class ConfigError(ValueError):
    """The config cannot be written: no timeout known for the profile, or the folder has a config of its own."""


def longest_cell(profile: str) -> float | None:
    """Seconds a lesson cell may take in a profile: a lesson's budget, or the longest cell measured there if longer."""
    measured = progress.measured_cells().get(profile, {}).get("cells", {})
    known = [tables.seconds(cell["took"]) for cell in measured.values()]
    if profile in runtime.LESSON_BUDGET:
        known.append(runtime.LESSON_BUDGET[profile])
    return max(known, default=None)


def cell_timeout(profile: str) -> int:
    """nbgrader's per-cell timeout in a profile: SAFETY times the longest a lesson cell may take there."""
    longest = longest_cell(profile)
    if longest is None:
        raise ConfigError(f"The {profile} profile has no lesson budget and no measured cell times "
                          "(kitlib/timings.json) to size nbgrader's per-cell timeout from: give it with --timeout "
                          "SECONDS.")
    return round(SAFETY * longest)


def render(profile: str, timeout: int) -> str:
    """The text of nbgrader_config.py for a profile and a per-cell timeout in seconds."""
    environment = {"KITLIB_PROFILE": profile, "KITLIB_OFFLINE": "1", "KITLIB_PROGRESS": "0"}
    return "\n".join([
        HEADER,
        "import os",
        "import sys",
        "",
        "c = get_config()  # noqa: F821 (defined where nbgrader loads this file)",
        "# Student copies as `kitlib course release` writes them: each solution block becomes the kit's stub.",
        f"c.ClearSolutions.begin_solution_delimeter = {BEGIN!r}",
        f"c.ClearSolutions.end_solution_delimeter = {END!r}",
        f"c.ClearSolutions.code_stub = {{'python': {STUB!r}}}",
        f"# Seconds a cell may run in `nbgrader autograde`: {SAFETY} times the longest a {profile} lesson cell takes.",
        f"c.Execute.timeout = {timeout}",
        f"# The kernels inherit nbgrader's environment: the lessons run in the {profile} profile, offline, no bars.",
        *(f"os.environ[{name!r}] = {value!r}" for name, value in environment.items()),
        "# The folder of the Python running nbgrader first on PATH: nbgrader runs `alembic` (its database) from PATH.",
        "os.environ['PATH'] = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get('PATH', '')])",
        "",
    ])


def written_here(path: Path) -> bool:
    """True when `path` is a config this module wrote (its first line is HEADER)."""
    try:
        with path.open(encoding="utf-8") as text:
            return text.readline().rstrip("\n") == HEADER
    except (OSError, UnicodeDecodeError):
        return False


def write(course: Path, profile: str, timeout: int | None = None) -> Path:
    """Write `course`/nbgrader_config.py (timeout: seconds a cell may run, default sized to the profile)."""
    if timeout is not None and timeout < 1:
        raise ConfigError(f"--timeout {timeout}: give the seconds a cell may run, 1 or more.")
    target = course / FILE
    if (target.exists() or target.is_symlink()) and not written_here(target):
        raise ConfigError(f"{target} exists and was not written by `kitlib course nbgrader-config`, so it is left as "
                          "it is. Move it away and run the command again, then copy any settings of yours from it "
                          "into the new file, below the kit's.")
    _fs.write_atomically(target, render(profile, timeout or cell_timeout(profile)))
    return target
