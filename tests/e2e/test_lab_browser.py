"""End to end: `make lab` (the README's command) in headless Chromium: the learner's exercise copies, lesson 00 run
without error output, a kitlib progress bar, nbgrader's menus only in `make lab-instructor`, no news pop-up.

Every wait follows the server's state rather than a fixed time: a cell run waits while the kernel is starting or
busy (or a cell is queued), and fails only once nothing has moved for QUIET seconds, so a loaded machine is slow,
not a failure.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from selenium.webdriver.common.by import By

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / ".cache" / "test" / "e2e"
LESSON = "00_start_here.ipynb"
EXERCISE = "01_word_embeddings.ipynb"  # a lesson with solutions, to see them hidden
ERROR_OUTPUTS = '.jp-RenderedText[data-mime-type="application/vnd.jupyter.stderr"]'
VENV = Path(sys.executable).parent.parent  # the environment these tests run in: `make lab` uses its jupyter
QUIET = 180  # seconds with no sign of work (page, server or kernel) before a wait gives up
CEILING = 1800  # seconds any one wait may take in all, however busy the kernel


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(what: str, probe: Callable[[], Any], working: Callable[[], tuple[Any, bool]] = lambda: (None, False),
             interval: float = 0.5) -> Any:
    """Poll `probe` until it returns something truthy. `working()` gives (state, active): the wait goes on while
    the state changes or is active (a kernel starting or busy, a cell queued), and fails once it has stood still
    and inactive for QUIET seconds, or after CEILING seconds in all."""
    start = last_move = time.monotonic()
    seen: Any = None
    while True:
        value = probe()
        if value:
            return value
        now = time.monotonic()
        state, active = working()
        if active or state != seen:
            seen, last_move = state, now
        if now - last_move > QUIET or now - start > CEILING:
            pytest.fail(f"timed out waiting for {what}: nothing moved for {now - last_move:.0f} s "
                        f"({now - start:.0f} s in all; last state: {seen})")
        time.sleep(interval)


class Lab:
    """`make lab` (or `make lab-instructor`) on loopback with a token, its lessons in a temp folder."""

    def __init__(self, target: str, notebooks: Path, work: Path) -> None:
        self.port, self.token = free_port(), secrets.token_hex(16)
        self.root = work / "exercises" if target == "lab" else notebooks
        settings = work / "settings"
        # every cell in the DOM, so the test sees all prompts and outputs (the user's own settings, not the kit's)
        tracker = settings / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings"
        tracker.parent.mkdir(parents=True, exist_ok=True)
        tracker.write_text(json.dumps({"windowingMode": "none"}))
        env = {k: v for k, v in os.environ.items() if k not in ("KITLIB_DATA_DIR", "JUPYTER_CONFIG_PATH", "MAKEFLAGS")}
        env.update(KITLIB_OFFLINE="1", KITLIB_PROFILE="smoke", KITLIB_CACHE=str(work / "kitlib-cache"),
                   KITLIB_RESULTS=str(work / "kitlib-results"), JUPYTER_CONFIG_DIR=str(work / "jupyter-config"),
                   JUPYTER_RUNTIME_DIR=str(work / "jupyter-runtime"), IPYTHONDIR=str(work / "ipython"))
        lab_args = " ".join([
            "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={self.port}", "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={self.token}", f"--LabApp.user_settings_dir={settings}",
            f"--LabApp.workspaces_dir={work / 'workspaces'}", "--LabApp.extension_manager=readonly"])
        self.log = work / f"{target}.log"
        # The README's command, in this environment (already set up: -o skips the set-up step) and on the temp folders.
        self.process = subprocess.Popen(
            ["make", "--no-print-directory", "-C", str(ROOT), "-o", str(VENV / ".kitlib-installed"), target,
             f"VENV={VENV}", f"NOTEBOOKS={notebooks}", f"EXERCISES={work / 'exercises'}", f"LAB_ARGS={lab_args}"],
            env=env, stdout=self.log.open("w"), stderr=subprocess.STDOUT, start_new_session=True,
        )

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}{'&' if '?' in path else '?'}token={self.token}"

    def api(self, path: str) -> Any:
        """GET a server path under api/ (lab/api/... as given); None while the server is not answering."""
        try:
            with urllib.request.urlopen(self.url(path if path.startswith("lab/") else f"api/{path}"), timeout=10) as r:
                return json.loads(r.read())
        except OSError:
            assert self.process.poll() is None, "JupyterLab exited:\n" + self.log.read_text()[-3000:]
            return None

    def kernel_states(self) -> tuple[str, ...] | None:
        """The execution state of each session's kernel (`starting`, `busy`, `idle`), None while not answering."""
        sessions = self.api("sessions")
        return None if sessions is None else tuple(s["kernel"]["execution_state"] for s in sessions)

    def kernels_idle(self) -> bool:
        states = self.kernel_states()
        return bool(states) and all(state == "idle" for state in states)

    def kernel_of(self, name: str) -> str | None:
        """The execution state of the kernel of notebook `name`'s own session; None while it has none."""
        sessions = self.api("sessions") or ()
        return next((s["kernel"]["execution_state"] for s in sessions if s["path"].endswith(name)), None)

    def stop(self) -> None:
        """Shut make, the server and its kernels down (SIGTERM to their process group, then SIGKILL)."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        # kernels live in the same process group; make sure none outlives the test
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


# Progress on in this kernel (the server runs the smoke profile, where it is off): extract a 40-file archive.
PROGRESS_CELL = """import io, os, pathlib, tarfile
os.environ["KITLIB_PROGRESS"] = "1"
from kitlib.data import downloads
with tarfile.open("files.tar", "w") as tf:
    for i in range(40):
        info = tarfile.TarInfo(f"files/{i}.txt")
        info.size = 1
        tf.addfile(info, io.BytesIO(b"x"))
downloads.extract(pathlib.Path("files.tar"), pathlib.Path("extracted"))
print("extracted:", len(list(pathlib.Path("extracted/files").iterdir())))"""


def lesson_folder(tmp_path: Path) -> Path:
    """A notebooks folder for `make lab`: lesson 00, a lesson with solutions, a failing and a progress notebook."""
    root = tmp_path / "notebooks"
    root.mkdir()
    for name in (LESSON, EXERCISE):
        shutil.copy(ROOT / "notebooks" / name, root / name)
    broken = {"cells": [{"cell_type": "code", "execution_count": None, "id": "boom", "metadata": {}, "outputs": [],
                         "source": ["raise ValueError('a deliberate error')"]}],
              "metadata": {"kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python",
                                          "name": "python3"}},
              "nbformat": 4, "nbformat_minor": 5}
    (root / "broken.ipynb").write_text(json.dumps(broken))
    watched = dict(broken, cells=[dict(broken["cells"][0], id="extract", source=[PROGRESS_CELL])])
    (root / "progress.ipynb").write_text(json.dumps(watched))
    return root


def started(target: str, tmp_path: Path) -> Iterator[Lab]:
    """`make <target>` on a fresh lesson folder, once the server answers; stopped afterwards."""
    server = Lab(target, lesson_folder(tmp_path), tmp_path)
    try:
        wait_for("JupyterLab to answer", lambda: server.api("status"),
                 lambda: (server.log.stat().st_size if server.log.exists() else 0, False))
        yield server
    finally:
        server.stop()


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    yield from started("lab", tmp_path)


@pytest.fixture
def instructor_lab(tmp_path: Path) -> Iterator[Lab]:
    yield from started("lab-instructor", tmp_path)


# Per code cell of the open notebook: its prompt and whether an output shows a traceback.
CELL_STATE = """
return [...document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-CodeCell')].map(cell => ({
  prompt: (cell.querySelector('.jp-InputArea-prompt') || {}).textContent || '',
  error: [...cell.querySelectorAll(arguments[0])].some(out => out.textContent.includes('Traceback')),
  text: (cell.querySelector('.jp-OutputArea') || {}).textContent || '',
  code: (cell.querySelector('.jp-InputArea-editor') || {}).textContent || '',
}));
"""
MENUS = "return [...document.querySelectorAll('.lm-MenuBar-itemLabel')].map(label => label.textContent)"
# The open notebook's tab: dirty (a dot in place of the close icon) once its model differs from the file.
NBGRADER_LOADED = "nbgrader.server_extensions.formgrader | extension was successfully loaded"
DIRTY = "return !!document.querySelector('.lm-TabBar-tab.lm-mod-current.jp-mod-dirty')"
# The open notebook's toolbar shows its kernel idle (JupyterLab's execution indicator).
PAGE_KERNEL_IDLE = ("return !!document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) "
                    ".jp-Notebook-ExecutionIndicator[data-status=\"idle\"]')")


def cells_of(driver: Any) -> list[dict]:
    return driver.execute_script(CELL_STATE, ERROR_OUTPUTS)


def open_notebook(driver: Any, lab: Lab, name: str, n_cells: int) -> list[dict]:
    """Open a notebook in a fresh workspace and wait until its cells render and its kernel is idle."""
    driver.get(lab.url(f"lab/workspaces/{name.replace('.', '-')}/tree/{name}"))
    page = lambda: (len(cells_of(driver)), driver.execute_script("return document.readyState") != "complete")
    wait_for(f"{name} to render its {n_cells} code cells", lambda: len(cells_of(driver)) == n_cells, page)
    # Its own session's kernel idle on the server and on the page: another notebook's idle kernel is not enough,
    # and a Run All clicked before the page has the kernel is dropped.
    kernel = lambda: (lab.kernel_states(), any(s in ("starting", "busy") for s in lab.kernel_states() or ()))
    ready = lambda: lab.kernel_of(name) == "idle" and driver.execute_script(PAGE_KERNEL_IDLE)
    wait_for(f"the kernel of {name} to start", ready, kernel)
    return cells_of(driver)


def run_all(driver: Any, lab: Lab, name: str, n_cells: int) -> list[dict]:
    """Open a notebook, run all cells from the Run menu, wait until they ran; returns the cell states."""
    open_notebook(driver, lab, name, n_cells)
    driver.find_element(By.XPATH, "//div[contains(@class, 'lm-MenuBar-itemLabel') and text()='Run']").click()
    driver.find_element(
        By.XPATH, "//li[contains(@class, 'lm-Menu-item')][.//div[contains(@class, 'lm-Menu-itemLabel') "
                  "and text()='Run All Cells']]").click()

    def finished() -> list[dict] | None:
        cells = cells_of(driver)
        done = any(c["error"] for c in cells) or all(c["prompt"].strip()[1:-2].isdigit() for c in cells)
        return cells if done and lab.kernels_idle() else None

    def progress() -> tuple[Any, bool]:
        """The cells' prompts and the kernel's state; active while the kernel works or a cell waits ([*])."""
        prompts = tuple(c["prompt"].strip() for c in cells_of(driver))
        states = lab.kernel_states() or ()
        return (prompts, states), "[*]:" in prompts or any(s in ("starting", "busy") for s in states)

    return wait_for(f"{name} to finish", finished, progress)


def test_lesson_00_runs_in_jupyterlab_in_chromium(lab: Lab, browser: Any) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    nb = json.loads((ROOT / "notebooks" / LESSON).read_text(encoding="utf-8"))
    n_code = sum(c["cell_type"] == "code" for c in nb["cells"])
    try:
        open_notebook(browser, lab, LESSON, n_code)
        assert not browser.execute_script(DIRTY), "opening the lesson marked it modified"
        cells = run_all(browser, lab, LESSON, n_code)
    finally:  # what the page showed, also when it failed
        browser.save_screenshot(str(SHOTS / "lesson00.png"))
    scroll_to = "document.querySelectorAll('.jp-CodeCell')[arguments[0]].scrollIntoView()"
    browser.execute_script(scroll_to, 0)
    browser.save_screenshot(str(SHOTS / "lesson00.png"))
    errors = [i for i, c in enumerate(cells) if c["error"]]
    assert not errors, f"code cells {errors} show a traceback:\n" + cells[errors[0]]["text"][-2000:]
    prompts = [c["prompt"].strip() for c in cells]
    assert prompts == [f"[{i}]:" for i in range(1, n_code + 1)], prompts
    assert "profile: smoke" in cells[0]["text"], cells[0]["text"][:500]
    assert "All checks passed." in cells[-1]["text"], cells[-1]["text"][-500:]
    browser.execute_script(scroll_to, n_code - 1)
    browser.save_screenshot(str(SHOTS / "lesson00-end.png"))

    # The same detector sees a real error: without this, a broken selector would make the test above vacuous.
    broken = run_all(browser, lab, "broken.ipynb", 1)
    assert broken[0]["error"] and "a deliberate error" in broken[0]["text"]


def test_make_lab_opens_exercise_copies_without_nbgrader_or_news(lab: Lab, browser: Any) -> None:
    source = json.loads((ROOT / "notebooks" / EXERCISE).read_text(encoding="utf-8"))
    n_code = sum(c["cell_type"] == "code" for c in source["cells"])
    assert "### BEGIN SOLUTION" in json.dumps(source), f"{EXERCISE} has no solution to hide: pick a lesson that does"
    assert (lab.root / EXERCISE).is_file() and lab.root.name == "exercises", lab.root
    cells = open_notebook(browser, lab, EXERCISE, n_code)
    browser.save_screenshot(str(SHOTS / "exercise01.png"))
    code = "\n".join(c["code"] for c in cells)
    assert "raise NotImplementedError()" in code and "BEGIN SOLUTION" not in code, code[:2000]
    assert not browser.execute_script(DIRTY), "opening the exercise copy marked it modified"
    menus = browser.execute_script(MENUS)
    assert "Run" in menus and "Nbgrader" not in menus, menus
    news = lab.api("lab/api/settings/@jupyterlab/apputils-extension:notification")["schema"]["properties"]
    assert news["fetchNews"]["default"] == "false" and news["checkForUpdates"]["default"] is False, news
    log = lab.log.read_text()
    assert NBGRADER_LOADED not in log and "nbgrader_config.py" not in log, "nbgrader's server extensions ran"
    assert ("--allow-root" in log) == (os.geteuid() == 0), "--allow-root is passed when root runs it, and only then"


def test_make_lab_instructor_opens_the_full_lessons_with_nbgrader(instructor_lab: Lab, browser: Any) -> None:
    source = json.loads((ROOT / "notebooks" / EXERCISE).read_text(encoding="utf-8"))
    n_code = sum(c["cell_type"] == "code" for c in source["cells"])
    cells = open_notebook(browser, instructor_lab, EXERCISE, n_code)
    assert "### BEGIN SOLUTION" in "\n".join(c["code"] for c in cells)
    wait_for("nbgrader's menu", lambda: "Nbgrader" in browser.execute_script(MENUS))
    assert NBGRADER_LOADED in instructor_lab.log.read_text()


def test_a_kitlib_extraction_shows_a_progress_widget_in_jupyterlab(lab: Lab, browser: Any) -> None:
    cells = run_all(browser, lab, "progress.ipynb", 1)
    browser.save_screenshot(str(SHOTS / "progress.png"))
    assert not cells[0]["error"], cells[0]["text"][-2000:]
    assert "extracted: 40" in cells[0]["text"]
    # tqdm's widget rendered by ipywidgets' JupyterLab extension, not its text fallback ("HBox(children=...")
    bars = browser.execute_script(
        "return [...document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea "
        ".widget-hprogress')].map(bar => bar.closest('.widget-hbox').textContent.replaceAll('\\u2007', ' '))")
    assert len(bars) == 1, bars  # tqdm pads the text with figure spaces (U+2007), replaced above
    assert "extracting 40 files and folders from files.tar: 100%" in bars[0] and "40/40" in bars[0], bars
