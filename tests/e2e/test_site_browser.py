"""The built course in Debian's headless Chromium: a lesson page loads from disk and its figures render."""

from __future__ import annotations

from typing import Any

# Every image of the page that comes from the site itself (not the Colab badge): its src and natural width.
LOCAL_IMAGES = """
return [...document.images].filter(img => img.src.startsWith('file:'))
  .map(img => ({src: img.src, complete: img.complete, width: img.naturalWidth}));
"""


def test_lesson_page_figures_render_in_chromium(built_site: Any, browser: Any) -> None:
    page = built_site.html / "lessons" / "01_word_embeddings.html"
    browser.get(page.as_uri())
    images = browser.execute_script(LOCAL_IMAGES)
    for _ in range(20):  # wait for decoding, if any is still under way
        if all(img["complete"] for img in images):
            break
        browser.implicitly_wait(0.5)
        images = browser.execute_script(LOCAL_IMAGES)
    assert len(images) >= 2, images
    assert all(img["width"] > 0 for img in images), [img for img in images if img["width"] == 0]
    assert "Word embeddings" in browser.title or "embeddings" in browser.title.lower(), browser.title
