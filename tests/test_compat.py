"""The declared floors are the stack `make test-compat` runs, and the Colab set-up lifts what falls short of them."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from kitlib import runtime

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def floors() -> dict[str, str]:
    found = {}
    for dep in PROJECT["dependencies"]:
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)>=([\w.]+)", dep.split(";")[0].strip())
        assert match, f"{dep!r}: every dependency states its tested floor as name>=version"
        found[match.group(1).lower()] = match.group(2)
    return found


def test_the_compat_environment_installs_exactly_the_declared_floors() -> None:
    minimum = dict(pin.lower().split("==") for pin in PROJECT["optional-dependencies"]["minimum"])
    assert {name: minimum.get(name) for name in floors()} == floors()


def test_make_test_compat_builds_its_environment_from_the_minimum_extra() -> None:
    makefile = (ROOT / "Makefile").read_text()
    recipe = re.search(r"^test-compat:.*\n((?:\t.*\n)+)", makefile, re.M)
    assert recipe, "the Makefile has a test-compat target"
    installs = [line for line in recipe.group(1).splitlines() if "pip install" in line]
    assert any(re.search(r"\$\(COMPAT\)/bin/python -m pip install .*-e \"\.\[minimum\]\"", line) for line in installs), installs


def test_runtime_reads_the_same_floors_from_the_installed_metadata() -> None:
    assert runtime.declared_minima() == floors()


def test_colab_lifts_a_keras_hub_below_the_floor_and_keeps_its_tensorflow() -> None:
    minima = {"tensorflow": "2.19.1", "keras": "3.10.0", "keras-hub": "0.25.1", "numpy": "1.26.4"}
    installed = {"tensorflow": "2.20.0", "tensorflow-text": "2.20.0", "keras": "3.12.0", "keras-hub": "0.21.1",
                 "numpy": "2.0.2"}
    assert runtime.colab_requirements(installed, minima) == ["keras-hub>=0.25.1", "tensorflow==2.20.0"]
    installed["keras-hub"] = "0.26.0"
    assert runtime.colab_requirements(installed, minima) == []


def test_colab_with_a_tensorflow_below_the_floor_is_told_not_upgraded(capsys) -> None:
    wanted = runtime.colab_requirements({"tensorflow": "2.18.0", "tensorflow-text": "2.18.1", "keras-hub": "0.25.1"},
                                        {"tensorflow": "2.19.1", "keras-hub": "0.25.1"})
    assert wanted == []
    assert "TensorFlow 2.18.0 is older than the 2.19.1 the kit is tested with" in capsys.readouterr().out
