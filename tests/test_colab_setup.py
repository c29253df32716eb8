"""Each lesson's setup cell in a simulated Colab: installs the kit from the repository only when missing, keeps TF."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
REPO_URL = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]["Repository"]

# Runs in a fresh interpreter: import the fake google.colab (Colab has it loaded), optionally hide the installed
# kitlib (this checkout's, on PYTHONPATH), replace subprocess.run by a recorder of pip calls whose "install" makes a
# stub kitlib importable, run the cell.
DRIVER = textwrap.dedent('''
    import importlib.util, json, os, subprocess, sys
    import google.colab  # noqa: F401  (the fake one on PYTHONPATH)

    hide_kitlib, stub_dir, log_path, cell_path = sys.argv[1] == "hide", sys.argv[2], sys.argv[3], sys.argv[4]
    if hide_kitlib:  # drop the editable install's finder and any path that holds the real package
        sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in getattr(f, "__module__", "").lower()]
        sys.path[:] = [p for p in sys.path if not os.path.exists(os.path.join(p or ".", "kitlib"))]
        sys.modules.pop("kitlib", None)
        assert importlib.util.find_spec("kitlib") is None, "could not hide kitlib"
    calls, real_run = [], subprocess.run

    def record(args, *rest, **kwargs):
        if "pip" not in " ".join(map(str, args)):  # e.g. platform's `uname -p`: nothing to do with installing
            return real_run(args, *rest, **kwargs)
        call = [str(a) for a in args]
        if "--constraint" in call:  # keep what the constraints file said: it is gone after the call
            at = call.index("--constraint") + 1
            call[at] = "CONSTRAINTS:" + open(call[at]).read()
        calls.append(call)
        json.dump(calls, open(log_path, "w"))
        if list(args)[1:4] == ["-m", "pip", "install"]:
            sys.path.insert(0, stub_dir)
            importlib.invalidate_caches()
        return subprocess.CompletedProcess(args, 0)

    class GuardedPopen(subprocess.Popen):
        """Every subprocess helper ends here: a pip command that got past the recorder fails loudly."""

        def __init__(self, args, *rest, **kwargs):
            if "pip" in (args if isinstance(args, str) else " ".join(map(str, args))):
                raise RuntimeError(f"REAL PIP REACHED in the fake Colab: {args}")
            super().__init__(args, *rest, **kwargs)

    def guarded_system(command):
        raise RuntimeError(f"REAL SHELL REACHED in the fake Colab: {command}")

    subprocess.Popen, os.system = GuardedPopen, guarded_system
    subprocess.run = record
    json.dump(calls, open(log_path, "w"))
    exec(compile(open(cell_path).read(), "setup cell", "exec"), {"__name__": "__main__"})
''')


def setup_cell(path: Path) -> str:
    nb = json.loads(path.read_text(encoding="utf-8"))
    return "".join(next(c for c in nb["cells"] if c["cell_type"] == "code")["source"])


def run_in_fake_colab(tmp_path: Path, cell: str, hide_kitlib: bool, check: bool = True) -> tuple[list[list[str]], str]:
    """Run a setup cell in a simulated Colab; returns (recorded subprocess calls, stdout)."""
    fake = tmp_path / "fake"
    (fake / "google" / "colab").mkdir(parents=True)  # no google/__init__.py: a namespace package, like protobuf's
    (fake / "google" / "colab" / "__init__.py").write_text('"""Stand-in for Colab\'s google.colab."""\n')
    stub = tmp_path / "after_pip" / "kitlib"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text('def setup():\n    print("stub kitlib.setup() ran")\n    return "cfg"\n')
    (tmp_path / "driver.py").write_text(DRIVER)
    (tmp_path / "cell.py").write_text(cell)
    log = tmp_path / "calls.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KITLIB_", "PYTHON"))}
    env.update(PYTHONPATH=os.pathsep.join([str(fake), str(ROOT)]), KITLIB_OFFLINE="1", KITLIB_CACHE=str(tmp_path / "cache"),
               KITLIB_RESULTS=str(tmp_path / "results"), CUDA_VISIBLE_DEVICES="",
               PIP_NO_INDEX="1")  # belt and braces: a real pip could not reach an index either
    done = subprocess.run(
        [sys.executable, str(tmp_path / "driver.py"), "hide" if hide_kitlib else "keep",
         str(stub.parent), str(log), str(tmp_path / "cell.py")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    if not check:
        return [], done.stdout + done.stderr
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(log.read_text()), done.stdout


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_setup_cell_installs_the_kit_from_the_repository_when_missing(path: Path, tmp_path: Path) -> None:
    calls, out = run_in_fake_colab(tmp_path, setup_cell(path), hide_kitlib=True)
    assert len(calls) == 1, calls
    command = calls[0]
    assert command[0] == sys.executable and command[1:4] == ["-m", "pip", "install"]
    assert "--no-deps" in command, "the kit alone: its loose dependencies must not let pip re-resolve Colab's stack"
    assert command[-1] == f"kitlib @ git+{REPO_URL}"
    assert not any("tensorflow" in arg.lower() for arg in command), f"Colab keeps its TensorFlow: {command}"
    assert "stub kitlib.setup() ran" in out, "the cell imports the freshly installed kit and calls setup()"


def test_setup_cell_skips_pip_when_the_kit_is_there_and_asks_for_a_gpu(tmp_path: Path) -> None:
    cell = setup_cell(NOTEBOOKS[0])  # the lint test checks every lesson has this same cell
    calls, out = run_in_fake_colab(tmp_path, cell, hide_kitlib=False)
    assert calls == [], f"kitlib is installed, yet the cell ran {calls}"
    assert "profile: " in out, "the real kitlib.setup() reported the profile"
    assert "Runtime > Change runtime type > GPU" in out


def test_setup_on_colab_adds_the_tensorflow_text_of_its_tensorflow(tmp_path: Path) -> None:
    stale = tmp_path / "fake" / "tensorflow_text-2.15.0.dist-info"  # found first on the path, like an old install
    stale.mkdir(parents=True)
    (stale / "METADATA").write_text("Metadata-Version: 2.1\nName: tensorflow-text\nVersion: 2.15.0\n")
    tensorflow = version("tensorflow")
    minor = ".".join(tensorflow.split(".")[:2])
    calls, out = run_in_fake_colab(tmp_path, setup_cell(NOTEBOOKS[0]), hide_kitlib=False)
    assert len(calls) == 1, "one pip call: the matching tensorflow-text"
    command = calls[0]
    assert command[:5] == [sys.executable, "-m", "pip", "install", "-q"] and command[-1] == f"tensorflow-text=={minor}.*"
    kept = command[command.index("--constraint") + 1].removeprefix("CONSTRAINTS:").split()
    assert f"tensorflow=={tensorflow}" in kept and f"keras=={version('keras')}" in kept, "TensorFlow and Keras kept"
    assert not any(arg.startswith("tensorflow==") for arg in command), "nothing asks pip for another TensorFlow"
    assert f"Colab: installing tensorflow-text=={minor}.* around its TensorFlow {tensorflow}" in out
    assert "profile: " in out, "setup() goes on after the install"


@pytest.mark.parametrize("cell", [
    "import subprocess, sys\nsubprocess.check_call([sys.executable, '-m', 'pip', 'install', 'kitlib'])",
    "import subprocess\nsubprocess.Popen('pip install kitlib', shell=True).wait()",
    "import os\nos.system('pip install kitlib')",
], ids=["check_call", "popen-shell", "os.system"])
def test_the_fake_colab_cannot_reach_a_real_pip(tmp_path: Path, cell: str) -> None:
    _, output = run_in_fake_colab(tmp_path, cell, hide_kitlib=False, check=False)
    assert "REAL PIP REACHED" in output or "REAL SHELL REACHED" in output
