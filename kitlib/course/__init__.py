"""Course tools for maintainers and instructors (no lesson imports them): runner, tables, site, release, grading."""

from __future__ import annotations

from pathlib import Path

CHECKOUT_MARKS = ("pyproject.toml", "README.md", "notebooks")


class CheckoutError(RuntimeError):
    """A course tool that writes the kit's own files ran where kitlib is not a checkout of the kit."""


def checkout(root: Path | str | None = None) -> Path:
    """The kit's checkout a course tool reads and writes: `root` as given, else the one kitlib was imported from."""
    if root:
        return Path(root)  # a folder the caller chose: each tool names the file it misses there
    folder = Path(__file__).resolve().parents[2]
    missing = [mark for mark in CHECKOUT_MARKS if not (folder / mark).exists()]
    if missing:
        raise CheckoutError(
            f"{folder} is not a checkout of the kit (no {', '.join(missing)}): the course tools (tables, site, "
            "stamp) work on the repository's own files, not on an installed kitlib. Clone the repository, install "
            "it with `pip install -e .` (or `make setup`) and run the command inside the clone.")
    return folder
