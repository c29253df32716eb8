"""The course as a static HTML site (`make site`): Sphinx with myst-nb over the executed lessons.

Why Sphinx + myst-nb (the engine of Jupyter Book 1) and the Sphinx Book Theme: the Executable Books
project keeps all three; myst-nb renders stored outputs without executing anything (the executed copies
come from `python -m kitlib course bench --executed`, the runner of `make results`), writes every figure to an
image file the page references, and Sphinx brings navigation, full-text search and a build that fails on
any broken cross-reference (`-W`), all offline. It installs from PyPI alone (Jupyter Book 2, built on
mystmd, needs Node), and it is one toolchain where mkdocs-material + mkdocs-jupyter would pair MkDocs with
an nbconvert export into it.

The sources the site is built from are assembled in a staging folder: the README (the learner's page) as
the home page, the teaching guide, the maintainers' guide, the results tables, and each lesson's executed copy
with a first note that says which run produced it (profile, data, model, machine, date, the kit's commit) and
offers two downloads: the lesson as the repository stores it (outputs stripped) and its exercise copy
(solutions replaced, as `make lab` opens it). The executed copies are never offered for download: they show
the datasets' reviews and photos. A site built from smoke-profile runs (`make site` without `make results`)
says so in a banner on every page. Links between these files are rewritten to the pages; a lesson that is not
in the build is named, not linked; links to other files go to the repository on GitHub.
"""

from __future__ import annotations

import fnmatch
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat

from kitlib import _fs
from kitlib.course import checkout, notebooks, release
from kitlib.course.repository import repository_url

LESSON_GLOB = "[0-9][0-9]_*.ipynb"
PAGES = {"README.md": "index.md", "docs/teaching_guide.md": "teaching_guide.md", "docs/data.md": "data.md",
         "docs/results.md": "results.md", "CONTRIBUTING.md": "contributing.md"}
FILES = "_files"  # the downloads' staging folder: `{download}` copies them into the site's _downloads/
LINK = re.compile(r"(!?\[([^\]]*)\]\()([^)\s]+)(\))")  # Markdown inline links and images: [text](target)

CONF = '''\
project = "Keras pre-training and fine-tuning kit"
extensions = ["myst_nb"]
html_theme = "sphinx_book_theme"
html_title = project
html_theme_options = {options!r}
nb_execution_mode = "off"  # the pages show the stored outputs of the executed copies
myst_heading_anchors = 3  # the README's [Results](#results) style links
myst_enable_extensions = ["dollarmath"]
exclude_patterns = ["_build", "{files}/**"]
html_copy_source = False  # never the executed copies for download: each lesson page offers its own files
html_show_sourcelink = False
html_static_path = ["_static"]
html_css_files = ["kitlib.css"]
'''
# Wide tables (the results) scroll inside their own box instead of running past the column; cells wrap.
CSS = """\
.bd-article table { display: block; max-width: 100%; overflow-x: auto; }
.bd-article table td, .bd-article table th { white-space: normal; min-width: 4em; }
"""
SMOKE_BANNER = ("Smoke build: every lesson ran in the smoke profile (a small slice of the data, the offline pack) "
                "to check that it runs; its numbers are not results. <code>make results</code> builds the full "
                "course.")


class SiteError(RuntimeError):
    """The site cannot be built from what is there (missing executed copies, error outputs, Sphinx failing)."""


def provenance_note(run: dict) -> str:
    """One Markdown note naming the run that produced a page (no machine's paths: a data folder by its name)."""
    if not run:
        return "> **Executed copy** of unknown provenance (it was not written by `python -m kitlib course bench --executed`)."
    where = run.get("data_dir", "-")
    source = (f"data folder `{Path(where).name}` (`KITLIB_DATA_DIR`)" if where != "-" else "no data folder") + (
        ", offline (the offline pack's stand-ins where the network would be needed)" if run.get("offline") else "")
    unnamed = "no result record names one; the outputs below show what it loaded"
    data = ", ".join(run.get("datasets") or []) or unnamed
    models = "; ".join(run.get("models") or []) or unnamed.replace("loaded", "built")
    return (f"> **Executed run:** profile `{run.get('profile', '-')}`; data: {data} ({source}); "
            f"model: {models}; machine: {run.get('machine', '-')}; date: {run.get('date', '-')}; "
            f"kit commit `{run.get('commit', '-')}`; the whole notebook took {run.get('seconds', 0):.0f} s.")


def downloads_note(name: str) -> str:
    """The lesson page's downloads: the stored lesson and its exercise copy (staged under FILES by `assemble`)."""
    return (f"> **Download:** {{download}}`the lesson <../{FILES}/lessons/{name}>` (solutions included, outputs "
            f"stripped) · {{download}}`the exercise copy <../{FILES}/exercises/{name}>` (solutions replaced by "
            "`raise NotImplementedError()`, as `make lab` opens it).")


def _rewrite_links(text: str, source: str, page: str, targets: dict[str, str], repo: str) -> str:
    """Point relative links of `source` (a repo path) at site pages from `page`; a lesson not built becomes its
    link text (no link to a page that is not there); other files link to the repository."""
    def replace(match: re.Match) -> str:
        target = match.group(3)
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
        elif resolved.startswith("notebooks/") and fnmatch.fnmatch(resolved.removeprefix("notebooks/"), LESSON_GLOB):
            return match.group(2)
        else:
            new = f"{repo}/blob/main/{resolved}" + (f"#{anchor}" if anchor else "")
        return match.group(1) + new + match.group(4)

    return LINK.sub(replace, text)


def _error_cells(notebook: nbformat.NotebookNode) -> list[int]:
    """Indices of code cells whose outputs include an error."""
    return [i for i, cell in enumerate(notebook.cells) if cell.cell_type == "code"
            and any(output.get("output_type") == "error" for output in cell.get("outputs", []))]


def assemble(executed: Path, staging: Path, root: Path | None = None, partial: bool = False) -> list[str]:
    """Write the site's sources into `staging`; returns the lesson pages (e.g. lessons/00_start_here.ipynb)."""
    root = checkout(root)
    lessons = sorted((root / "notebooks").glob(LESSON_GLOB))
    present = [p for p in lessons if (executed / p.name).is_file()]
    missing = [p.name for p in lessons if p not in present]
    if missing and not partial:
        raise SiteError(f"No executed copy in {executed} of: {', '.join(missing)}. Run `make site` (it runs the "
                        "missing lessons in the smoke profile) or `make results` (the full run), or build from "
                        "what is there with --partial.")
    if not present:
        raise SiteError(f"No executed lesson in {executed}: run `make site`, which runs the lessons in the smoke "
                        "profile first, or `make results`.")
    copies = {p.name: notebooks.read(executed / p.name) for p in present}
    for name, notebook in copies.items():
        errors = _error_cells(notebook)
        if errors:
            raise SiteError(f"{executed / name} has error outputs in cells {errors}: the run failed "
                            f"({notebook.metadata.get('kitlib_run', {}).get('error')}). Fix it and run it again.")
    repo = repository_url(root)
    targets = dict(PAGES) | {f"notebooks/{p.name}": f"lessons/{p.name}" for p in present}
    smoke = any(n.metadata.get("kitlib_run", {}).get("profile") == "smoke" for n in copies.values())
    options = {"repository_url": repo, "use_repository_button": True, "home_page_in_toc": True,
               "use_download_button": False}  # its .ipynb entry would be the executed copy: see downloads_note
    if smoke:
        options["announcement"] = SMOKE_BANNER
    staging.mkdir(parents=True, exist_ok=True)
    (staging / "lessons").mkdir(exist_ok=True)
    (staging / "_static").mkdir(exist_ok=True)
    (staging / "_static" / "kitlib.css").write_text(CSS, encoding="utf-8")
    (staging / "conf.py").write_text(CONF.format(options=options, files=FILES), encoding="utf-8")
    for source, page in PAGES.items():
        text = _rewrite_links((root / source).read_text(encoding="utf-8"), source, page, targets, repo)
        if page == "index.md":
            toc = "\n".join(f"lessons/{p.stem}" for p in present)
            text += (f"\n\n```{{toctree}}\n:hidden:\n:caption: Lessons\n\n{toc}\n```\n\n"
                     "```{toctree}\n:hidden:\n:caption: Course\n\nteaching_guide\ndata\nresults\ncontributing\n```\n")
        (staging / page).write_text(text, encoding="utf-8")
    (staging / FILES / "lessons").mkdir(parents=True, exist_ok=True)
    for path in present:
        shutil.copyfile(path, staging / FILES / "lessons" / path.name)
    try:
        release.release(present, staging / FILES / "exercises")
    except release.ReleaseError as exc:
        raise SiteError(f"No exercise copy for the downloads: {exc}") from None
    pages = []
    for path in present:
        notebook = copies[path.name]
        page = f"lessons/{path.name}"
        for cell in notebook.cells:
            if cell.cell_type == "markdown":
                cell.source = _rewrite_links(cell.source, f"notebooks/{path.name}", page, targets, repo)
        note = provenance_note(notebook.metadata.get("kitlib_run", {})) + "\n>\n" + downloads_note(path.name)
        notebook.cells.insert(1, nbformat.v4.new_markdown_cell(note))
        notebooks.write(staging / page, notebook)
        pages.append(page)
    return pages


def build(executed: Path, out: Path, root: Path | None = None, partial: bool = False) -> list[str]:
    """Build the HTML site into `out` (Sphinx, warnings are errors); returns the lesson pages built."""
    root = checkout(root)
    try:
        import myst_nb  # noqa: F401
        import sphinx_book_theme  # noqa: F401
    except ImportError as exc:
        raise SiteError(f"{exc.name} is missing: the site needs the pinned stack (`make setup`, pyproject's "
                        "`local` extra: sphinx, myst-nb, sphinx-book-theme).") from None
    with tempfile.TemporaryDirectory(prefix="kitlib-site-") as folder:
        staging = Path(folder) / "src"
        pages = assemble(executed, staging, root, partial)
        with _fs.staged_folder(Path(out).absolute()) as html:  # the old site stays whole until the new one is
            done = subprocess.run(
                [sys.executable, "-m", "sphinx", "-b", "html", "-W", "--keep-going", "-q", "-d",
                 str(Path(folder) / "doctrees"), str(staging), str(html)],
                capture_output=True, text=True)
            if done.returncode != 0:
                raise SiteError(f"sphinx-build failed:\n{done.stderr[-4000:]}")
            (html / ".nojekyll").write_text("")  # GitHub Pages: serve _static/ and _images/ as they are
            html.chmod(0o755)  # mkdtemp's folder is private; a site is read by whoever serves it
    return pages

