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
