"""Student copies of the lessons: each solution block becomes `raise NotImplementedError()` (nbgrader convention)."""

from __future__ import annotations

import json
from pathlib import Path

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
STUB = "raise NotImplementedError()"


def strip_solutions(source: str) -> str:
    """Replace every BEGIN..END SOLUTION block (markers included) by a stub at the BEGIN marker's indentation."""
    kept: list[str] = []
    indent: str | None = None
    for number, line in enumerate(source.splitlines(keepends=True), start=1):
        marker = line.strip()
        if marker == BEGIN:
            if indent is not None:
                raise ValueError(f"line {number}: {BEGIN} inside another solution block")
            indent = line[: len(line) - len(line.lstrip())]
            continue
        if marker == END:
            if indent is None:
                raise ValueError(f"line {number}: {END} without {BEGIN}")
            kept.append(indent + STUB + ("\n" if line.endswith("\n") else ""))
            indent = None
            continue
        if indent is None:
            kept.append(line)
    if indent is not None:
        raise ValueError(f"{BEGIN} without {END}")
    return "".join(kept)


def student_notebook(notebook: dict) -> dict:
    """A copy of a notebook (nbformat 4 JSON) with solutions stubbed and outputs stripped."""
    copy = json.loads(json.dumps(notebook))
    for cell in copy["cells"]:
        if cell["cell_type"] != "code":
            continue
        source = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
        cell["source"] = strip_solutions(source).splitlines(keepends=True)
        cell["outputs"] = []
        cell["execution_count"] = None
    return copy


def release(notebooks: list[Path], out: Path) -> list[Path]:
    """Write the student copy of each notebook into `out` (nbformat's own JSON layout); return the paths."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in sorted(notebooks):
        notebook = student_notebook(json.loads(path.read_text(encoding="utf-8")))
        target = out / path.name
        target.write_text(json.dumps(notebook, indent=1, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
        written.append(target)
    return written
