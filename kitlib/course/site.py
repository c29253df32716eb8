"""The course as a static HTML site (`make site`): Sphinx with myst-nb over the executed lessons.

Why Sphinx + myst-nb (the engine of Jupyter Book 1) and the Sphinx Book Theme: the Executable Books
project keeps all three; myst-nb renders stored outputs without executing anything (the executed copies
come from `python -m kitlib bench --executed`, the runner of `make results`), writes every figure to an
image file the page references, and Sphinx brings navigation, full-text search and a build that fails on
any broken cross-reference (`-W`), all offline. It installs from PyPI alone (Jupyter Book 2, built on
mystmd, needs Node), and it is one toolchain where mkdocs-material + mkdocs-jupyter would pair MkDocs with
an nbconvert export into it.

The sources the site is built from are assembled in a staging folder: the README's overview as the home
page, the teaching guide, the results tables, and each lesson's executed copy with a first note that says
which run produced it (profile, data, model, machine, date, the kit's commit). Links between these files
are rewritten to the pages; links to other files in the repository go to the repository on GitHub.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat

from kitlib.course.repository import repository_url

ROOT = Path(__file__).resolve().parents[2]  # a checkout: README.md, docs/, notebooks/
LESSON_GLOB = "[0-9][0-9]_*.ipynb"
PAGES = {"README.md": "index.md", "docs/teaching_guide.md": "teaching_guide.md", "docs/results.md": "results.md"}
LINK = re.compile(r"(\]\()([^)\s]+)(\))")  # Markdown inline links and images: [text](target)

CONF = '''\
project = "Keras pre-training and fine-tuning kit"
extensions = ["myst_nb"]
html_theme = "sphinx_book_theme"
html_title = project
html_theme_options = {{"repository_url": {repo!r}, "use_repository_button": True, "home_page_in_toc": True}}
nb_execution_mode = "off"  # the pages show the stored outputs of the executed copies
myst_heading_anchors = 3  # the README's [Results](#results) style links
myst_enable_extensions = ["dollarmath"]
exclude_patterns = ["_build"]
html_copy_source = False  # the executed notebooks are in the pages already; no second copy under _sources/
html_show_sourcelink = False
'''


class SiteError(RuntimeError):
    """The site cannot be built from what is there (missing executed copies, error outputs, Sphinx failing)."""


def provenance_note(run: dict) -> str:
    """One Markdown note naming the run that produced a page."""
    if not run:
        return "> **Executed copy** of unknown provenance (it was not written by `python -m kitlib bench --executed`)."
    where = run.get("data_dir", "-")
    source = (f"`KITLIB_DATA_DIR={where}`" if where != "-" else "no data folder") + (
        ", offline (the offline pack's stand-ins where the network would be needed)" if run.get("offline") else "")
    data = ", ".join(run.get("datasets") or []) or "none recorded"
    models = "; ".join(run.get("models") or []) or "none recorded"
    return (f"> **Executed run:** profile `{run.get('profile', '-')}`; data: {data} ({source}); "
            f"model: {models}; machine: {run.get('machine', '-')}; date: {run.get('date', '-')}; "
            f"kit commit `{run.get('commit', '-')}`; the whole notebook took {run.get('seconds', 0):.0f} s.")


def _rewrite_links(text: str, source: str, page: str, targets: dict[str, str], repo: str) -> str:
    """Point relative links of `source` (a repo path) at site pages from `page`, else at the repository."""
    def replace(match: re.Match) -> str:
        target = match.group(2)
        if re.match(r"[a-z][a-z0-9+.-]*:|#", target):
            return match.group(0)
        path, _, anchor = target.partition("#")
        resolved = Path(source).parent.joinpath(path).as_posix()
        parts: list[str] = []
        for part in resolved.split("/"):
            if part == "..":
                if parts:
                    parts.pop()
            elif part not in ("", "."):
                parts.append(part)
        resolved = "/".join(parts)
        if resolved in targets:
            depth = page.count("/")
            new = "../" * depth + targets[resolved] + (f"#{anchor}" if anchor else "")
        else:
            new = f"{repo}/blob/main/{resolved}" + (f"#{anchor}" if anchor else "")
        return match.group(1) + new + match.group(3)

    return LINK.sub(replace, text)


def _error_cells(notebook: nbformat.NotebookNode) -> list[int]:
    """Indices of code cells whose outputs include an error."""
    return [i for i, cell in enumerate(notebook.cells) if cell.cell_type == "code"
            and any(output.get("output_type") == "error" for output in cell.get("outputs", []))]


def assemble(executed: Path, staging: Path, root: Path = ROOT, partial: bool = False) -> list[str]:
    """Write the site's sources into `staging`; returns the lesson pages (e.g. lessons/00_start_here.ipynb)."""
    lessons = sorted((root / "notebooks").glob(LESSON_GLOB))
    present = [p for p in lessons if (executed / p.name).is_file()]
    missing = [p.name for p in lessons if p not in present]
    if missing and not partial:
        raise SiteError(f"No executed copy in {executed} of: {', '.join(missing)}. Run `make results` (it writes "
                        "them), or build from what is there with --partial.")
    if not present:
        raise SiteError(f"No executed lesson in {executed}: run `make results` first.")
    repo = repository_url(root)
    targets = dict(PAGES) | {f"notebooks/{p.name}": f"lessons/{p.name}" for p in present}
    staging.mkdir(parents=True, exist_ok=True)
    (staging / "lessons").mkdir(exist_ok=True)
    (staging / "conf.py").write_text(CONF.format(repo=repo), encoding="utf-8")
    for source, page in PAGES.items():
        text = _rewrite_links((root / source).read_text(encoding="utf-8"), source, page, targets, repo)
        if page == "index.md":
            toc = "\n".join(f"lessons/{p.stem}" for p in present)
            text += (f"\n\n```{{toctree}}\n:hidden:\n:caption: Lessons\n\n{toc}\n```\n\n"
                     "```{toctree}\n:hidden:\n:caption: Course\n\nteaching_guide\nresults\n```\n")
        (staging / page).write_text(text, encoding="utf-8")
    pages = []
    for path in present:
        notebook = nbformat.read(executed / path.name, as_version=4)
        errors = _error_cells(notebook)
        if errors:
            raise SiteError(f"{executed / path.name} has error outputs in cells {errors}: the run failed "
                            f"({notebook.metadata.get('kitlib_run', {}).get('error')}). Fix it and run it again.")
        page = f"lessons/{path.name}"
        for cell in notebook.cells:
            if cell.cell_type == "markdown":
                cell.source = _rewrite_links(cell.source, f"notebooks/{path.name}", page, targets, repo)
        note = nbformat.v4.new_markdown_cell(provenance_note(notebook.metadata.get("kitlib_run", {})))
        notebook.cells.insert(1, note)
        nbformat.write(notebook, str(staging / page))
        pages.append(page)
    return pages


def build(executed: Path, out: Path, root: Path = ROOT, partial: bool = False) -> list[str]:
    """Build the HTML site into `out` (Sphinx, warnings are errors); returns the lesson pages built."""
    try:
        import myst_nb  # noqa: F401
        import sphinx_book_theme  # noqa: F401
    except ImportError as exc:
        raise SiteError(f"{exc.name} is missing: the site needs the pinned stack (`make setup`, pyproject's "
                        "`local` extra: sphinx, myst-nb, sphinx-book-theme).") from None
    with tempfile.TemporaryDirectory(prefix="kitlib-site-") as folder:
        staging = Path(folder) / "src"
        pages = assemble(executed, staging, root, partial)
        if out.exists():
            shutil.rmtree(out)
        done = subprocess.run(
            [sys.executable, "-m", "sphinx", "-b", "html", "-W", "--keep-going", "-q", "-d",
             str(Path(folder) / "doctrees"), str(staging), str(out)],
            capture_output=True, text=True)
        if done.returncode != 0:
            raise SiteError(f"sphinx-build failed:\n{done.stderr[-4000:]}")
    (out / ".nojekyll").write_text("")  # GitHub Pages: serve _static/ and _images/ as they are
    return pages

