"""The repository's URL, defined once (pyproject's [project.urls] Repository) and stamped everywhere it is used.

`python -m kitlib course stamp` writes it into the lessons' Colab badges and setup cells (`pip install kitlib @
git+URL`), the nightly workflow's repository guard, and the README's link to the published site; `--check`
only reports what is out of step. Files are edited as text, so notebooks keep their JSON formatting.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from kitlib import _fs
from kitlib.course import checkout

NAME = r"[A-Za-z0-9_.-]+"
# (files, pattern, replacement given "owner/name"): each place the URL appears, and how it is written there.
PLACES: list[tuple[str, re.Pattern, str]] = [
    ("notebooks/*.ipynb", re.compile(rf"colab\.research\.google\.com/github/{NAME}/{NAME}/blob/"),
     "colab.research.google.com/github/{repo}/blob/"),
    ("notebooks/*.ipynb", re.compile(rf"git\+https://github\.com/{NAME}/{NAME}"), "git+https://github.com/{repo}"),
    (".github/workflows/*.yml", re.compile(rf"github\.repository == '{NAME}/{NAME}'"),
     "github.repository == '{repo}'"),
    ("README.md", re.compile(rf"https://{NAME}\.github\.io/{NAME}/"), "{pages}"),
]


def repository_url(root: Path | None = None) -> str:
    """pyproject's [project.urls] Repository: https://github.com/owner/name."""
    url = tomllib.loads((checkout(root) / "pyproject.toml").read_text(encoding="utf-8"))["project"]["urls"]["Repository"]
    if not re.fullmatch(rf"https://github\.com/{NAME}/{NAME}", url):
        raise ValueError(f"pyproject's Repository URL {url!r} is not https://github.com/OWNER/NAME: fix it there.")
    return url


def pages_url(url: str) -> str:
    """Where GitHub Pages publishes the site of a repository."""
    owner, name = url.removeprefix("https://github.com/").split("/")
    return f"https://{owner.lower()}.github.io/{name}/"


def stamp(root: Path | None = None, check: bool = False) -> list[Path]:
    """Write the repository URL into every place that uses it; returns the files changed (or, checking, stale)."""
    root = checkout(root)
    url = repository_url(root)
    values = {"repo": url.removeprefix("https://github.com/"), "pages": pages_url(url)}
    edits: dict[Path, str] = {}
    for files, pattern, template in PLACES:
        for path in sorted(root.glob(files)):
            text = edits.get(path) or path.read_text(encoding="utf-8")
            edits[path] = pattern.sub(template.format(**values), text)
    changed = [path for path, text in edits.items() if text != path.read_text(encoding="utf-8")]
    if not check:
        for path in changed:
            _fs.write_atomically(path, edits[path])
    return changed
