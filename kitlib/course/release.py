"""Student copies of the lessons: each solution block becomes `raise NotImplementedError()` (nbgrader convention).

The marker grammar is strict: a solution block sits in a code cell, between a line that is exactly
`### BEGIN SOLUTION` and a line that is exactly `### END SOLUTION` (leading and trailing spaces
allowed, nothing else on the line, upper case, not nested). Any other line that mentions BEGIN or
END SOLUTION, in any cell type and any case, also after Unicode (NFKC) normalisation or written with
invisible or look-alike characters, is refused with the notebook and cell it is in, so a mistyped
marker can never let a solution through. The finished copy is searched whole (sources, attachments,
metadata, outputs) for solution text before it is kept.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import unicodedata
from pathlib import Path
from typing import Any, Iterator

from kitlib.course import notebooks
from kitlib.course.notebooks import BEGIN, END, STUB, source as _source

NEAR_MARKER = re.compile(r"(begin|end)[\s_-]*solution", re.IGNORECASE)
ODD = "\x00"  # stands for any non-ASCII character when looking for a disguised marker
LOOSE_MARKER = re.compile("(" + "|".join("".join(f"[{c}{ODD}]" for c in word) for word in ("begin", "end"))
                          + f")[\\s_{ODD}-]*" + "".join(f"[{c}{ODD}]" for c in "solution"), re.IGNORECASE)


def _skeleton(text: str) -> str:
    """Text after NFKC normalisation, invisible (format) characters dropped, other non-ASCII ones as ODD."""
    normal = unicodedata.normalize("NFKC", text)
    return "".join("" if unicodedata.category(c) == "Cf" else c if c.isascii() else ODD for c in normal)


def mentions_marker(text: str) -> bool:
    """True when text mentions BEGIN/END SOLUTION in any case, spacing, normalisation or disguise."""
    return bool(NEAR_MARKER.search(text) or LOOSE_MARKER.search(_skeleton(text)))


def _odd_characters(line: str) -> str:
    """The non-ASCII characters of a line, named ('U+200B ZERO WIDTH SPACE, ...')."""
    odd = dict.fromkeys(c for c in line if not c.isascii())
    return ", ".join(f"U+{ord(c):04X} {unicodedata.name(c, '?')}" for c in odd)


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
        if mentions_marker(line):
            odd = _odd_characters(line)
            raise ValueError(
                f"line {number}: {line.strip()!r} looks like a solution marker but is not one"
                + (f" (it holds {odd}, invisible or look-alike characters)" if odd else "")
                + f"; write exactly {BEGIN!r} or {END!r} in plain ASCII on a line of its own"
            )
        if indent is None:
            kept.append(line)
    if indent is not None:
        raise ValueError(f"{BEGIN} without {END}")
    return "".join(kept)


def _where(name: str, index: int, cell: dict) -> str:
    """'notebook.ipynb, cell 7 (code)' for error messages (cells counted from 1)."""
    return f"{name}, cell {index + 1} ({cell['cell_type']})"


def student_notebook(notebook: dict, name: str = "notebook") -> dict:
    """A copy of a notebook (nbformat 4 JSON) with solutions stubbed and outputs stripped."""
    copy = json.loads(json.dumps(notebook))
    for index, cell in enumerate(copy["cells"]):
        source = _source(cell)
        if cell["cell_type"] != "code":
            if mentions_marker(source):
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
    copy.get("metadata", {}).pop("widgets", None)  # saved widget state is output, and may hold anything
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


def _texts(value: Any, where: str) -> Iterator[tuple[str, str]]:
    """(where, text) of every string in a notebook part, base64 payloads (attachments, images) decoded too."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _texts(item, f"{where}/{key}")
    elif isinstance(value, list):
        for number, item in enumerate(value):
            yield from _texts(item, f"{where}/{number}")
    elif isinstance(value, str):
        yield where, value
        if len(value) >= 8 and re.fullmatch(r"[A-Za-z0-9+/=\s]+", value):
            try:
                yield where + " (decoded)", base64.b64decode(value, validate=False).decode("utf-8", "ignore")
            except (binascii.Error, ValueError):
                pass


def verify_student_copy(copy: dict, instructor: dict, name: str) -> None:
    """Refuse a student copy that holds a marker or a solution-only line anywhere: sources, attachments,
    cell and notebook metadata, outputs."""
    leaked = solution_only_lines(instructor)
    parts = [(f"{_where(name, index, cell)}", cell) for index, cell in enumerate(copy["cells"])]
    parts.append((f"{name}, notebook metadata", copy.get("metadata", {})))
    for label, part in parts:
        for where, text in _texts(part, ""):
            lines = text.splitlines()
            hit = next((line for line in lines if mentions_marker(line) or line.strip() in leaked), None)
            hit = hit or next((line for line in leaked if len(line) > 12 and line in text), None)
            if hit is not None:
                place = f" at {where.lstrip('/')}" if where and not where.endswith("/source") else ""
                raise ReleaseError(
                    f"{label}{place} of the student copy still holds solution text ({hit.strip()[:80]!r}); "
                    "this copy was not released. Remove it from the instructor notebook (clear outputs, "
                    "attachments and metadata that copy the solution) and release again."
                )


def _has_solutions(path: Path) -> bool:
    """True when an existing file is a notebook with a solution marker (an instructor copy)."""
    try:
        return any(BEGIN in _source(c) for c in notebooks.read(path).cells)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


def _check_out(paths: list[Path], out: Path) -> None:
    """Refuse an output folder that is a file, is, contains or is inside a source folder, or holds instructor copies."""
    if out.exists() and not out.is_dir():
        raise ReleaseError(f"--out {out} is a file, not a folder: give a folder for the student copies.")
    resolved = out.resolve()
    for folder in {path.parent.resolve() for path in paths}:
        if resolved == folder or resolved.is_relative_to(folder) or folder.is_relative_to(resolved):
            raise ReleaseError(
                f"Refusing to write student copies into {out}: it is, contains or is inside the source "
                f"folder {folder}, whose notebooks hold the solutions. Choose a separate folder, e.g. --out release."
            )
    for path in paths:
        if _has_solutions(out / path.name):
            raise ReleaseError(
                f"Refusing to overwrite {out / path.name}: it holds solutions (an instructor copy). "
                "Choose an empty output folder."
            )


def release(paths: list[Path], out: Path) -> list[Path]:
    """Write the student copy of each notebook into `out` (nbformat's own JSON layout), verified; return the paths."""
    out = Path(out)
    _check_out(paths, out)
    copies = {}
    for path in sorted(paths):
        try:
            instructor = notebooks.read(path)
        except notebooks.NotebookError as exc:
            raise ReleaseError(str(exc)) from None
        copy = student_notebook(instructor, path.name)
        verify_student_copy(copy, instructor, path.name)
        copies[path] = (instructor, copy)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ReleaseError(f"Cannot create the output folder {out} ({exc.strerror or exc}): choose a writable "
                           "folder with --out.") from None
    written = []
    for path, (instructor, copy) in copies.items():
        target = out / path.name
        notebooks.write(target, copy)
        try:
            verify_student_copy(notebooks.read(target), instructor, path.name)
        except ReleaseError:
            target.unlink()
            raise
        written.append(target)
    return written
