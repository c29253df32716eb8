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
