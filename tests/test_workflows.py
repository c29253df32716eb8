"""The GitHub Actions workflows: valid against GitHub's workflow schema, and doing what the README says."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))


def lint(*paths: Path) -> subprocess.CompletedProcess:
    """check-jsonschema with the GitHub workflow schema it vendors (no network)."""
    return subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows",
                           *map(str, paths)], capture_output=True, text=True, timeout=120)


def test_workflows_pass_the_linter() -> None:
    assert {p.name for p in WORKFLOWS} == {"test.yml", "site.yml", "nightly.yml", "exercises.yml"}
    done = lint(*WORKFLOWS)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_linter_catches_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"  # a job without runs-on, a step that is neither `uses` nor `run`
    broken.write_text("on: push\njobs:\n  test:\n    steps:\n      - name: nothing\n        with: {a: 1}\n")
    done = lint(broken)
    assert done.returncode != 0 and "broken.yml" in done.stdout + done.stderr


@pytest.mark.parametrize("name, needles", [
    ("test.yml", ["push:", "schedule:", "target: [test, test-compat, test-newest]", "run: make ${{ matrix.target }}",
                  "run: make test-gpu-path", "run: make test-slow"]),
    ("site.yml", ["run: make site", "path: build/site", "actions/deploy-pages@", "pages: write"]),
    ("exercises.yml", ["branches: [main]", "run: make exercises EXERCISES=build/exercises", "contents: write",
                       "git push --force", " exercises\n"]),
    ("nightly.yml", ["schedule:", "cron:", "kitlib doctor --online", "KITLIB_PROFILE: cpu",
                     "notebooks/04_finetune_bert.ipynb notebooks/05_finetune_resnet.ipynb",
                     "smoke-site:", "run: make site"]),
])
def test_each_workflow_runs_its_command(name: str, needles: list[str]) -> None:
    text = (ROOT / ".github" / "workflows" / name).read_text()
    for needle in needles:
        assert needle in text, f"{name} lacks {needle!r}"


def test_the_exercises_branch_holds_what_the_badges_open(tmp_path: Path) -> None:
    """The workflow's steps, run here on a copy: `make exercises` writes a student copy of every lesson, and the
    published tree holds exactly notebooks/<lesson>.ipynb for each, the paths the Colab badges open."""
    import json
    import re

    text = (ROOT / ".github" / "workflows" / "exercises.yml").read_text()
    out = tmp_path / "exercises"
    done = subprocess.run(["make", "--no-print-directory", "-C", str(ROOT), "-o", f"{sys.prefix}/.kitlib-installed",
                           "exercises", f"VENV={sys.prefix}", f"EXERCISES={out}"], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    lessons = sorted(p.name for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert sorted(p.name for p in out.glob("*.ipynb")) == lessons
    for name in lessons:
        first = "".join(json.loads((ROOT / "notebooks" / name).read_text())["cells"][0]["source"])
        assert re.search(rf"/blob/exercises/notebooks/{re.escape(name)}\)", first), name
        copy = (out / name).read_text()
        assert "### BEGIN SOLUTION" not in copy, f"{name}: the published copy shows a solution"
    assert "cp build/exercises/*.ipynb build/publish/notebooks/" in text and "git add notebooks" in text
