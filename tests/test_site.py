"""`make site`: the course built from executed lessons, every page, figure and link there, and the run named."""

from __future__ import annotations

import html.parser
import re
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import nbformat
import pytest

from kitlib.course import repository, site

ROOT = Path(__file__).resolve().parents[1]
SITE_LESSONS = ("00_start_here.ipynb", "01_word_embeddings.ipynb")  # what tests/conftest.py built_site runs
FIGURE_CALL = re.compile(r"\b(plot_\w+|show_images)\(|\bplt\.")  # code cells that draw a figure


class Page(html.parser.HTMLParser):
    """The links, image sources and element ids of one HTML page."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.links: list[str] = []
        self.images: list[str] = []
        self.ids: set[str] = set()
        self.classes: list[str] = []
        self.feed(path.read_text(encoding="utf-8"))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if values.get("id"):
            self.ids.add(values["id"])
        self.classes.extend((values.get("class") or "").split())
        if tag == "a" and values.get("href"):
            self.links.append(values["href"])
        if tag == "img" and values.get("src"):
            self.images.append(values["src"])


def local(url: str) -> bool:
    return not urlsplit(url).scheme and not url.startswith("//")


def test_every_lesson_page_exists_and_is_linked_from_home(built_site: Any) -> None:
    assert built_site.pages == [f"lessons/{name}" for name in SITE_LESSONS]
    home = Page(built_site.html / "index.html")
    for name in SITE_LESSONS:
        page = built_site.html / "lessons" / name.replace(".ipynb", ".html")
        assert page.is_file(), page
        assert f"lessons/{page.name}" in home.links
    for extra in ("teaching_guide.html", "results.html", "search.html", "searchindex.js"):
        assert (built_site.html / extra).is_file(), extra


@pytest.mark.parametrize("name", SITE_LESSONS)
def test_every_figure_cell_has_an_image_the_page_shows(built_site: Any, name: str) -> None:
    source = nbformat.read(ROOT / "notebooks" / name, as_version=4)
    executed = nbformat.read(built_site.executed / name, as_version=4)
    assert [c.source for c in executed.cells] == [c.source for c in source.cells], "the copy is the lesson, executed"
    figure_cells = [i for i, c in enumerate(source.cells) if c.cell_type == "code" and FIGURE_CALL.search(c.source)]
    assert figure_cells, f"{name} draws no figure: pick lessons that do"
    for i in figure_cells:
        pngs = [o for o in executed.cells[i].outputs if "image/png" in o.get("data", {})]
        assert pngs, f"cell {i} of {name} draws a figure but kept no image:\n{executed.cells[i].source[:200]}"
    images = sum("image/png" in o.get("data", {}) for c in executed.cells if c.cell_type == "code" for o in c.outputs)
    page_path = built_site.html / "lessons" / name.replace(".ipynb", ".html")
    shown = [src for src in Page(page_path).images if local(src)]
    assert len(shown) == images, f"{name}: {images} images in the executed copy, {len(shown)} on the page"
    for src in shown:
        assert (page_path.parent / unquote(src)).stat().st_size > 0, src


def test_no_error_outputs(built_site: Any) -> None:
    for name in SITE_LESSONS:
        executed = nbformat.read(built_site.executed / name, as_version=4)
        assert all(o.output_type != "error" for c in executed.cells if c.cell_type == "code" for o in c.outputs)
        page = Page(built_site.html / "lessons" / name.replace(".ipynb", ".html"))
        assert "traceback" not in page.classes and "Traceback (most recent call last)" not in (
            built_site.html / "lessons" / name.replace(".ipynb", ".html")).read_text(encoding="utf-8")


def test_internal_links_resolve(built_site: Any) -> None:
    pages = {path.resolve(): Page(path) for path in built_site.html.rglob("*.html")}
    broken = []
    for path, page in pages.items():
        for url in page.links + page.images:
            if not local(url):
                continue
            parts = urlsplit(url)
            target = (path.parent / unquote(parts.path)).resolve() if parts.path else path
            if not target.exists():
                broken.append(f"{path.name} -> {url}")
            elif parts.fragment and target.suffix == ".html" and parts.fragment not in pages[target].ids:
                broken.append(f"{path.name} -> {url} (no such anchor)")
    assert not broken, "\n".join(broken[:20])


def test_each_lesson_page_names_its_run(built_site: Any) -> None:
    for name in SITE_LESSONS:
        text = (built_site.html / "lessons" / name.replace(".ipynb", ".html")).read_text(encoding="utf-8")
        note = text[text.index("Executed run:"):][:1500]
        for field in ("profile", "smoke", "data:", "model:", "machine:", "date:", "kit commit"):
            assert field in note, f"{name}: {field!r} missing from the run note"


def test_lessons_not_built_are_named_not_linked(built_site: Any) -> None:
    home = Page(built_site.html / "index.html")
    text = (built_site.html / "index.html").read_text(encoding="utf-8")
    unbuilt = [p.name for p in sorted((ROOT / "notebooks").glob(site.LESSON_GLOB)) if p.name not in SITE_LESSONS]
    assert unbuilt, "the site test builds every lesson: nothing to check"
    for name in unbuilt:
        assert not [url for url in home.links if name in url], f"{name} is linked though it has no page"
    assert "LSTM baseline" in text, "the unbuilt lesson's link text stays"
    assert f"{repository.repository_url()}/blob/main/docs/teaching_guide.md" not in home.links, "a page, not GitHub"


def test_each_lesson_page_offers_the_stored_lesson_and_its_exercise_copy(built_site: Any) -> None:
    for name in SITE_LESSONS:
        page_path = built_site.html / "lessons" / name.replace(".ipynb", ".html")
        files = [url for url in Page(page_path).links if url.endswith(f"/{name}") and "_downloads/" in url]
        assert len(files) == 2, files
        stored = nbformat.read(ROOT / "notebooks" / name, as_version=4)
        got = [nbformat.read(page_path.parent / unquote(url), as_version=4) for url in files]
        lesson, exercise = sorted(got, key=lambda nb: "### BEGIN SOLUTION" not in json_of(nb))
        assert [c.source for c in lesson.cells] == [c.source for c in stored.cells], "the lesson as stored"
        assert not any(c.get("outputs") for c in lesson.cells), "no executed outputs (the datasets' reviews)"
        if "### BEGIN SOLUTION" in json_of(stored):
            assert "### BEGIN SOLUTION" not in json_of(exercise) and "raise NotImplementedError()" in json_of(exercise)


def json_of(notebook: Any) -> str:
    return nbformat.writes(notebook)


def test_a_smoke_build_says_so_on_every_page(built_site: Any) -> None:
    pages = sorted(built_site.html.glob("*.html")) + sorted(built_site.html.glob("lessons/*.html"))
    content = [p for p in pages if p.name not in ("search.html", "genindex.html")]
    assert len(content) >= 5, content
    for path in content:
        assert "Smoke build:" in path.read_text(encoding="utf-8"), f"{path.name} has no smoke-build banner"


def test_the_run_note_names_a_data_folder_without_the_machine_path() -> None:
    run = {"profile": "cpu", "data_dir": "/srv/classroom/../shared/datasets", "datasets": [], "models": ["BiLSTM"]}
    note = site.provenance_note(run)
    assert "data folder `datasets`" in note and "/srv" not in note, note
    assert "no result record names one" in note and "none recorded" not in note, note


def test_wide_tables_scroll_inside_the_column(built_site: Any) -> None:
    css = (built_site.html / "_static" / "kitlib.css").read_text(encoding="utf-8")
    assert "overflow-x: auto" in css
    assert "_static/kitlib.css" in (built_site.html / "results.html").read_text(encoding="utf-8")


def test_refuses_missing_lessons_and_error_outputs(tmp_path: Path) -> None:
    executed = tmp_path / "executed"
    executed.mkdir()
    with pytest.raises(site.SiteError, match="No executed copy .* of: 00_start_here.ipynb.*make results"):
        site.assemble(executed, tmp_path / "src")
    failed = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Start"), nbformat.v4.new_code_cell(
        "1/0", outputs=[nbformat.v4.new_output("error", ename="ZeroDivisionError", evalue="division by zero")])])
    nbformat.write(failed, executed / "00_start_here.ipynb")
    with pytest.raises(site.SiteError, match=r"error outputs in cells \[1\]"):
        site.assemble(executed, tmp_path / "src", partial=True)
