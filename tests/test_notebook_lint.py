"""Notebook lint: stripped outputs, own-path Colab badge, the setup and knobs conventions, exercises, checks;
the repository URL they use is pyproject's, stamped everywhere by `python -m kitlib stamp`."""

from __future__ import annotations

import ast
import json
import re
import tomllib
from pathlib import Path

import pytest

from kitlib.course import repository

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
REPO_URL = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]["Repository"]
REPO = REPO_URL.removeprefix("https://github.com/")


def cells(path: Path, kind: str | None = None) -> list[dict]:
    nb = json.loads(path.read_text(encoding="utf-8"))
    return [c for c in nb["cells"] if kind is None or c["cell_type"] == kind]


def source(cell: dict) -> str:
    return "".join(cell["source"])


def test_lessons_exist_in_order() -> None:
    names = [p.name for p in NOTEBOOKS]
    assert names[:3] == ["00_start_here.ipynb", "01_word_embeddings.ipynb", "02_lstm_baseline.ipynb"]
    assert all(re.fullmatch(r"\d\d_[a-z0-9_]+\.ipynb", n) for n in names)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_language_info_is_the_kernels_so_opening_does_not_mark_the_lesson_modified(path: Path) -> None:
    """JupyterLab writes the kernel's `language_info` into the notebook when it starts: anything else stored
    marks the lesson modified as it opens (tests/e2e checks the tab). Only the Python version may differ."""
    from ipykernel.ipkernel import IPythonKernel

    stored = json.loads(path.read_text(encoding="utf-8"))["metadata"]["language_info"]
    kernel = dict(IPythonKernel.language_info)
    assert {k: v for k, v in stored.items() if k != "version"} == {k: v for k, v in kernel.items() if k != "version"}
    assert re.fullmatch(r"3\.\d+\.\d+", stored.get("version", "")), stored


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_outputs_are_stripped(path: Path) -> None:
    for cell in cells(path, "code"):
        assert cell["outputs"] == [] and cell["execution_count"] is None, source(cell)[:60]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_first_cell_has_title_badge_time_and_prerequisites(path: Path) -> None:
    first = source(cells(path)[0])
    assert first.startswith("# ")
    # the exercise copy of this very lesson, which the exercises workflow publishes to the `exercises` branch
    badge = f"https://colab.research.google.com/github/{REPO}/blob/exercises/notebooks/{path.name}"
    assert badge in first, f"the Colab badge must open this lesson's exercise copy: {badge}"
    assert "**Time:**" in first and "smoke" in first and "**Prerequisites:**" in first


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_setup_cell_convention(path: Path) -> None:
    setup = source(cells(path, "code")[0])
    assert 'if importlib.util.find_spec("kitlib") is None:' in setup, "install the kit only where it is missing"
    assert f"kitlib @ git+{REPO_URL}" in setup and '"--no-deps"' in setup, "pip must not re-resolve Colab's stack"
    assert "cfg = kitlib.setup()" in setup
    first_setups = {source(cells(p, "code")[0]) for p in NOTEBOOKS}
    assert len(first_setups) == 1, "every lesson starts with the same setup cell"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_one_knobs_cell_tagged_parameters(path: Path) -> None:
    tagged = [c for c in cells(path, "code") if "parameters" in c["metadata"].get("tags", [])]
    assert len(tagged) == 1
    assert re.search(r"^[A-Z_]+ = ", source(tagged[0]), re.M), "knobs are UPPER_CASE assignments"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_ends_with_assertions(path: Path) -> None:
    last = ast.parse(source(cells(path, "code")[-1]))
    asserts = [node for node in last.body if isinstance(node, ast.Assert)]
    assert len(asserts) >= 3, "the last code cell closes the lesson with at least three top-level assert statements"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_exercises_have_solution_markers_and_a_check(path: Path) -> None:
    code = cells(path, "code")
    for i, cell in enumerate(code):
        text = source(cell)
        assert text.count("### BEGIN SOLUTION") == text.count("### END SOLUTION")
        if "### BEGIN SOLUTION" in text:
            assert text.index("### BEGIN SOLUTION") < text.index("### END SOLUTION")
            assert "kitlib.checks." in source(code[i + 1]), "a check cell follows each solution"


@pytest.mark.parametrize("name", [p.name for p in NOTEBOOKS if not p.name.startswith("00_")])
def test_at_least_two_exercises(name: str) -> None:
    solutions = [c for c in cells(ROOT / "notebooks" / name, "code") if "### BEGIN SOLUTION" in source(c)]
    assert len(solutions) >= 2


def test_repository_url_is_stamped_everywhere() -> None:
    stale = repository.stamp(ROOT, check=True)
    assert not stale, f"out of step with pyproject's Repository URL: {stale}; run `python -m kitlib stamp`"
    assert f"github.repository == '{REPO}'" in (ROOT / ".github" / "workflows" / "nightly.yml").read_text()
    assert repository.pages_url(REPO_URL) in (ROOT / "README.md").read_text()


def test_stamp_writes_a_new_url_into_every_place(tmp_path: Path) -> None:
    for relative in ("pyproject.toml", "README.md", ".github/workflows/nightly.yml", f"notebooks/{NOTEBOOKS[0].name}"):
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_bytes((ROOT / relative).read_bytes())
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace(REPO_URL, "https://github.com/Someone/fork-kit"))
    changed = repository.stamp(tmp_path)
    assert len(changed) == 3 and repository.stamp(tmp_path, check=True) == []
    lesson = json.loads((tmp_path / "notebooks" / NOTEBOOKS[0].name).read_text(encoding="utf-8"))
    assert f"colab.research.google.com/github/Someone/fork-kit/blob/exercises/notebooks/{NOTEBOOKS[0].name}" in source(
        lesson["cells"][0])
    assert "kitlib @ git+https://github.com/Someone/fork-kit" in source(
        [c for c in lesson["cells"] if c["cell_type"] == "code"][0])
    assert "github.repository == 'Someone/fork-kit'" in (tmp_path / ".github/workflows/nightly.yml").read_text()
    assert "https://someone.github.io/fork-kit/" in (tmp_path / "README.md").read_text()
    for path in changed:
        assert REPO not in path.read_text(encoding="utf-8"), path
    raw = (tmp_path / "notebooks" / NOTEBOOKS[0].name).read_text(encoding="utf-8")
    assert raw == (ROOT / "notebooks" / NOTEBOOKS[0].name).read_text(encoding="utf-8").replace(
        REPO, "Someone/fork-kit"), "only the URL changed: the JSON formatting is kept"
