"""Notebook files in one canonical format: read and upgraded by nbformat, written atomically, the solution markers.

Every course tool (mark, release, grade, tables, the runner, stamp) reads and writes lessons through here, so a
lesson file is always nbformat 4 JSON as nbformat writes it (indent 1, keys sorted, UTF-8 as is, one trailing
newline) and is replaced whole or not at all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat

from kitlib import _fs

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
STUB = "raise NotImplementedError()"  # the kit's stub for a solution block, also given to nbgrader


class NotebookError(ValueError):
    """A file is not a notebook the course tools can use; the message says what is wrong with it."""


def source(cell: Any) -> str:
    """A cell's source as one string (nbformat allows a string or a list of lines)."""
    text = cell.get("source", "") if isinstance(cell, dict) else ""
    return text if isinstance(text, str) else "".join(text)


def from_text(text: str, name: str = "notebook", validate: bool = False) -> nbformat.NotebookNode:
    """A notebook from its JSON text, older formats upgraded to nbformat 4 (nbformat's own conversion)."""
    try:
        notebook = nbformat.reads(text, as_version=4, capture_validation_error={})
    except Exception as exc:  # nbformat raises JSON errors, KeyError, TypeError... for what is not a notebook
        raise NotebookError(f"{name} is not a notebook ({type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''})") from None
    if not isinstance(notebook.get("cells"), list):
        raise NotebookError(f"{name} is not a notebook: it has no list of cells.")
    if validate:
        try:
            nbformat.validate(notebook)
        except nbformat.ValidationError as exc:
            where = "/".join(str(part) for part in exc.absolute_path) or "the top level"
            raise NotebookError(f"{name} is not a valid nbformat 4 notebook: at {where}, "
                                f"{str(exc.message)[:200]}") from None
    return notebook


def read(path: Path, validate: bool = False) -> nbformat.NotebookNode:
    """A notebook file, upgraded to nbformat 4; NotebookError names the file when it cannot be read as one."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise NotebookError(f"{path} cannot be read as a notebook ({type(exc).__name__}: {exc}).") from None
    return from_text(text, str(path), validate)


def dumps(notebook: dict) -> str:
    """The canonical text of a notebook: nbformat's JSON (indent 1, sorted keys), ending in one newline."""
    text = nbformat.writes(nbformat.from_dict(notebook), version=4)
    return text if text.endswith("\n") else text + "\n"


def write(path: Path, notebook: dict) -> None:
    """Write a notebook in the canonical format, atomically (a failed write leaves the old file)."""
    _fs.write_atomically(Path(path), dumps(notebook))
