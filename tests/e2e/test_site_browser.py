"""The built course in Debian's headless Chromium: a lesson page loads from disk and its figures render."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

SHOTS = Path(__file__).resolve().parents[2] / ".cache" / "test" / "e2e"
# Every image of the page that comes from the site itself (not the Colab badge): src, loaded, natural width.
LOCAL_IMAGES = """
return [...document.images].filter(img => img.src.startsWith('file:'))
  .map(img => ({src: img.src, complete: img.complete, width: img.naturalWidth}));
"""


def test_lesson_page_figures_render_in_chromium(built_site: Any, browser: Any) -> None:
    page = built_site.html / "lessons" / "01_word_embeddings.html"
    browser.get(page.as_uri())
    deadline = time.monotonic() + 10
    images = browser.execute_script(LOCAL_IMAGES)
    while not all(img["complete"] for img in images) and time.monotonic() < deadline:
        time.sleep(0.2)
        images = browser.execute_script(LOCAL_IMAGES)
    SHOTS.mkdir(parents=True, exist_ok=True)
    browser.execute_script("document.querySelector('.cell_output img').scrollIntoView()")
    browser.save_screenshot(str(SHOTS / "site-lesson01.png"))
    assert len(images) >= 2, images
    assert all(img["width"] > 0 for img in images), [img for img in images if img["width"] == 0]
    assert "embeddings" in browser.title.lower(), browser.title


# Each table of the page: whether it stays inside the article's column, or else scrolls inside its own box.
TABLES = """
const column = document.querySelector('.bd-article').getBoundingClientRect();
return [...document.querySelectorAll('.bd-article table')].map(table => {
  const box = table.getBoundingClientRect();
  return {inside: box.left >= column.left - 1 && box.right <= column.right + 1,
          scrolls: getComputedStyle(table).overflowX === 'auto' && table.scrollWidth > table.clientWidth,
          text: table.textContent.trim().slice(0, 60)};
});
"""
BANNER = "return (document.querySelector('.bd-header-announcement') || {}).textContent || ''"


def test_home_lesson_and_results_pages_fit_and_say_what_they_are(built_site: Any, browser: Any) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    for page, shot in (("index.html", "site-home.png"), ("results.html", "site-results.png"),
                       ("lessons/00_start_here.html", "site-lesson00.png")):
        browser.get((built_site.html / page).as_uri())
        browser.save_screenshot(str(SHOTS / shot))
        tables = browser.execute_script(TABLES)
        assert tables, f"{page} shows no table"
        wide = [t for t in tables if not (t["inside"] or t["scrolls"])]
        assert not wide, f"{page}: tables run past the column: {wide}"
        assert "Smoke build" in browser.execute_script(BANNER), f"{page} does not say it is a smoke build"
    note = browser.find_element("css selector", ".bd-article blockquote").text
    assert "Executed run:" in note and "none recorded" not in note, note
    downloads = [a.get_attribute("href") for a in browser.find_elements("css selector", "a.download")]
    assert len(downloads) == 2 and all(Path(href.removeprefix("file://")).is_file() for href in downloads), downloads
