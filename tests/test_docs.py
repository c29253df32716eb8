"""The README and the teaching guide list every lesson that exists, and link to it."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_readme_lesson_table_links_every_notebook(path: Path) -> None:
    rows = [line for line in (ROOT / "README.md").read_text().splitlines() if line.startswith(f"| {path.name[:2]} |")]
    assert any(f"(notebooks/{path.name})" in row for row in rows), f"README's lesson table has no row for {path.name}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_teaching_guide_syllabus_links_every_notebook(path: Path) -> None:
    guide = (ROOT / "docs" / "teaching_guide.md").read_text()
    assert f"(../notebooks/{path.name})" in guide, f"the syllabus has no row for {path.name}"
