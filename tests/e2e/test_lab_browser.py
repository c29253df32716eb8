"""End to end: JupyterLab in headless Chromium runs lesson 00 without error output and shows a kitlib progress bar."""

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
ERROR_OUTPUTS = '.jp-RenderedText[data-mime-type="application/vnd.jupyter.stderr"]'


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(what: str, probe: Callable[[], Any], timeout: float, interval: float = 0.5) -> Any:
    """Poll `probe` until it returns something truthy; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


class Lab:
    """A JupyterLab server on loopback with a token, serving a temp folder."""

    def __init__(self, root: Path, work: Path) -> None:
        self.root, self.port, self.token = root, free_port(), secrets.token_hex(16)
        settings = work / "settings"
        for name, values in {
            # every cell in the DOM, so the test sees all prompts and outputs
            "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
            # no news or update checks from the page: the test stays on loopback
            "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                                 "checkForUpdates": False},
        }.items():
            (settings / name).parent.mkdir(parents=True, exist_ok=True)
            (settings / name).write_text(json.dumps(values))
        env = {k: v for k, v in os.environ.items() if k != "KITLIB_DATA_DIR"}
        env.update(KITLIB_OFFLINE="1", KITLIB_PROFILE="smoke", KITLIB_CACHE=str(work / "kitlib-cache"),
                   KITLIB_RESULTS=str(work / "kitlib-results"), JUPYTER_CONFIG_DIR=str(work / "jupyter-config"),
                   JUPYTER_RUNTIME_DIR=str(work / "jupyter-runtime"), IPYTHONDIR=str(work / "ipython"))
        self.log = work / "jupyterlab.log"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
             f"--ServerApp.port={self.port}", "--ServerApp.port_retries=0",
             f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={root}",
             f"--LabApp.user_settings_dir={settings}", f"--LabApp.workspaces_dir={work / 'workspaces'}",
             "--LabApp.extension_manager=readonly", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
             "--allow-root"],  # CI runs as root
            cwd=root, env=env, stdout=self.log.open("w"), stderr=subprocess.STDOUT, start_new_session=True,
        )

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}?token={self.token}"

    def api(self, path: str) -> Any:
        """GET a server API path; None while the server is not answering."""
        try:
            with urllib.request.urlopen(self.url(f"api/{path}"), timeout=5) as response:
                return json.loads(response.read())
        except OSError:
            assert self.process.poll() is None, "JupyterLab exited:\n" + self.log.read_text()[-3000:]
            return None

    def kernels_idle(self) -> bool:
        sessions = self.api("sessions") or []
        return bool(sessions) and all(s["kernel"]["execution_state"] == "idle" for s in sessions)

    def stop(self) -> None:
        """Shut the server and its kernels down (SIGTERM to its own process group, then SIGKILL)."""
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


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    root = tmp_path / "notebooks"
    root.mkdir()
    shutil.copy(ROOT / "notebooks" / LESSON, root / LESSON)
    broken = {"cells": [{"cell_type": "code", "execution_count": None, "id": "boom", "metadata": {}, "outputs": [],
                         "source": ["raise ValueError('a deliberate error')"]}],
              "metadata": {"kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python",
                                          "name": "python3"}},
              "nbformat": 4, "nbformat_minor": 5}
    (root / "broken.ipynb").write_text(json.dumps(broken))
    watched = dict(broken, cells=[dict(broken["cells"][0], id="extract", source=[PROGRESS_CELL])])
    (root / "progress.ipynb").write_text(json.dumps(watched))
    server = Lab(root, tmp_path)
    try:
        wait_for("JupyterLab to answer", lambda: server.api("status"), timeout=60)
        yield server
    finally:
        server.stop()


# Per code cell of the open notebook: its prompt and whether an output shows a traceback.
CELL_STATE = """
return [...document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-CodeCell')].map(cell => ({
  prompt: (cell.querySelector('.jp-InputArea-prompt') || {}).textContent || '',
  error: [...cell.querySelectorAll(arguments[0])].some(out => out.textContent.includes('Traceback')),
  text: (cell.querySelector('.jp-OutputArea') || {}).textContent || '',
}));
"""


def run_all(driver: Any, lab: Lab, name: str, n_cells: int, timeout: float) -> list[dict]:
    """Open a notebook, run all cells from the Run menu, wait until the kernel is idle; returns the cell states."""
    driver.get(lab.url(f"lab/workspaces/{name.replace('.', '-')}/tree/{name}"))  # a fresh workspace per notebook
    wait_for(f"{name} to render its {n_cells} code cells",
             lambda: len(driver.execute_script(CELL_STATE, ERROR_OUTPUTS)) == n_cells, timeout=60)
    wait_for("the kernel to start", lab.kernels_idle, timeout=60)
    driver.find_element(By.XPATH, "//div[contains(@class, 'lm-MenuBar-itemLabel') and text()='Run']").click()
    driver.find_element(
        By.XPATH, "//li[contains(@class, 'lm-Menu-item')][.//div[contains(@class, 'lm-Menu-itemLabel') "
                  "and text()='Run All Cells']]").click()

    def finished() -> list[dict] | None:
        cells = driver.execute_script(CELL_STATE, ERROR_OUTPUTS)
        done = any(c["error"] for c in cells) or all(c["prompt"].strip()[1:-2].isdigit() for c in cells)
        return cells if done and lab.kernels_idle() else None

    return wait_for(f"{name} to finish", finished, timeout=timeout)


def test_lesson_00_runs_in_jupyterlab_in_chromium(lab: Lab, browser: Any) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    nb = json.loads((ROOT / "notebooks" / LESSON).read_text(encoding="utf-8"))
    n_code = sum(c["cell_type"] == "code" for c in nb["cells"])
    try:
        cells = run_all(browser, lab, LESSON, n_code, timeout=150)
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
    broken = run_all(browser, lab, "broken.ipynb", 1, timeout=60)
    assert broken[0]["error"] and "a deliberate error" in broken[0]["text"]


def test_a_kitlib_extraction_shows_a_progress_widget_in_jupyterlab(lab: Lab, browser: Any) -> None:
    cells = run_all(browser, lab, "progress.ipynb", 1, timeout=90)
    browser.save_screenshot(str(SHOTS / "progress.png"))
    assert not cells[0]["error"], cells[0]["text"][-2000:]
    assert "extracted: 40" in cells[0]["text"]
    # tqdm's widget rendered by ipywidgets' JupyterLab extension, not its text fallback ("HBox(children=...")
    bars = browser.execute_script(
        "return [...document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea "
        ".widget-hprogress')].map(bar => bar.closest('.widget-hbox').textContent.replaceAll('\\u2007', ' '))")
    assert len(bars) == 1, bars  # tqdm pads the text with figure spaces (U+2007), replaced above
    assert "extracting 40 files and folders from files.tar: 100%" in bars[0] and "40/40" in bars[0], bars
