"""Student copies of the lessons: each solution block becomes `raise NotImplementedError()` (nbgrader convention).

The marker grammar is strict: a solution block sits in a code cell, between a line that is exactly
`### BEGIN SOLUTION` and a line that is exactly `### END SOLUTION` (leading and trailing spaces
allowed, nothing else on the line, upper case, not nested). Any other line that mentions BEGIN or
END SOLUTION, in any cell type and any case, is refused with the notebook and cell it is in, so a
mistyped marker can never let a solution through.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from kitlib import _fs

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
STUB = "raise NotImplementedError()"
NEAR_MARKER = re.compile(r"(begin|end)[\s_-]*solution", re.IGNORECASE)


class ReleaseError(ValueError):
    """A notebook cannot be released safely; the message names the notebook and cell."""


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
        if NEAR_MARKER.search(line):
            raise ValueError(
                f"line {number}: {line.strip()!r} looks like a solution marker but is not one; "
                f"write exactly {BEGIN!r} or {END!r} on a line of its own"
            )
        if indent is None:
            kept.append(line)
    if indent is not None:
        raise ValueError(f"{BEGIN} without {END}")
    return "".join(kept)


def _source(cell: dict) -> str:
    """A cell's source as one string (nbformat allows a string or a list of lines)."""
    return cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])


def _where(name: str, index: int, cell: dict) -> str:
    """'notebook.ipynb, cell 7 (code)' for error messages (cells counted from 1)."""
    return f"{name}, cell {index + 1} ({cell['cell_type']})"


def student_notebook(notebook: dict, name: str = "notebook") -> dict:
    """A copy of a notebook (nbformat 4 JSON) with solutions stubbed and outputs stripped."""
    copy = json.loads(json.dumps(notebook))
    for index, cell in enumerate(copy["cells"]):
        source = _source(cell)
        if cell["cell_type"] != "code":
            if NEAR_MARKER.search(source):
                raise ReleaseError(
                    f"{_where(name, index, cell)} mentions a solution marker: solution blocks belong "
                    "in code cells only. Move the solution into a code cell or reword the text."
                )
            continue
        try:
            cell["source"] = strip_solutions(source).splitlines(keepends=True)
        except ValueError as exc:
            raise ReleaseError(f"{_where(name, index, cell)}: {exc}") from None
        cell["outputs"] = []
        cell["execution_count"] = None
    return copy


def solution_only_lines(notebook: dict) -> set[str]:
    """Stripped lines that appear inside a solution block of the notebook and nowhere outside one."""
    inside, outside = set(), set()
    for cell in notebook["cells"]:
        in_block = False
        for line in _source(cell).splitlines():
            text = line.strip()
            if text in (BEGIN, END):
                in_block = text == BEGIN
            elif text:
                (inside if in_block else outside).add(text)
    return inside - outside - {STUB}


def verify_student_copy(copy: dict, instructor: dict, name: str) -> None:
    """Refuse a student copy that holds a marker or a line found only inside the instructor's solutions."""
    leaked = solution_only_lines(instructor)
    for index, cell in enumerate(copy["cells"]):
        for line in _source(cell).splitlines():
            if NEAR_MARKER.search(line) or line.strip() in leaked:
                raise ReleaseError(
                    f"{_where(name, index, cell)} of the student copy still holds solution text "
                    f"({line.strip()!r}); this copy was not released."
                )


def _has_solutions(path: Path) -> bool:
    """True when an existing file is a notebook with a solution marker (an instructor copy)."""
    try:
        return any(_source(c).find(BEGIN) >= 0 for c in json.loads(path.read_text(encoding="utf-8"))["cells"])
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _check_out(notebooks: list[Path], out: Path) -> None:
    """Refuse an output folder that is, contains or is inside a source folder, or holds instructor notebooks."""
    resolved = out.resolve()
    for folder in {path.parent.resolve() for path in notebooks}:
        if resolved == folder or resolved.is_relative_to(folder) or folder.is_relative_to(resolved):
            raise ReleaseError(
                f"Refusing to write student copies into {out}: it is, contains or is inside the source "
                f"folder {folder}, whose notebooks hold the solutions. Choose a separate folder, e.g. --out release."
            )
    for path in notebooks:
        if _has_solutions(out / path.name):
            raise ReleaseError(
                f"Refusing to overwrite {out / path.name}: it holds solutions (an instructor copy). "
                "Choose an empty output folder."
            )


def release(notebooks: list[Path], out: Path) -> list[Path]:
    """Write the student copy of each notebook into `out` (nbformat's own JSON layout), verified; return the paths."""
    out = Path(out)
    _check_out(notebooks, out)
    copies = {}
    for path in sorted(notebooks):
        try:
            instructor = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ReleaseError(f"{path} is not a readable notebook ({exc}).") from None
        copy = student_notebook(instructor, path.name)
        verify_student_copy(copy, instructor, path.name)
        copies[path] = (instructor, copy)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path, (instructor, copy) in copies.items():
        target = out / path.name
        _fs.write_atomically(target, json.dumps(copy, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
        try:
            verify_student_copy(json.loads(target.read_text(encoding="utf-8")), instructor, path.name)
        except ReleaseError:
            target.unlink()
            raise
        written.append(target)
    return written
