"""The web app in a real browser: Playwright drives headless Chromium against the app on loopback.

Upload a PDF, index it, ask, and check the answer, its citation and the page thumbnails; a
screenshot is saved (and copied to ``$PAGESIGHT_SCREENSHOT`` when set, for the README).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest

from tests.ui.conftest import FACT, QUESTION

# gradio's queue statistics use pandas options that pandas 3 deprecates: not ours to fix
pytestmark = pytest.mark.filterwarnings("ignore::Warning:gradio.queueing")

CHROMIUM = os.environ.get("PAGESIGHT_CHROMIUM", "/usr/bin/chromium")
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}


@pytest.fixture
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium, or set PAGESIGHT_CHROMIUM)")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def served(tmp_path):
    from pagesight.ui.app import build_app, launch

    demo = build_app(tmp_path / "store")
    url = launch(demo, "127.0.0.1", 0, block=False, quiet=True)
    try:
        yield url
    finally:
        demo.close()


@pytest.mark.enable_socket
def test_upload_index_ask_in_chromium(browser, served, uploads, tmp_path):
    from playwright.sync_api import expect

    expect.set_options(timeout=30_000)  # generous: CI shares two cores between the app and the browser
    assert urlsplit(served).hostname == "127.0.0.1"
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(30_000)
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(served)

    page.locator("#upload input[type=file]").set_input_files(str(uploads["lighthouse"]))
    # the upload finished: gradio shows the file's row (its text splits the name as "lighthouse .pdf"
    # in some Chromium builds, so match the cell's accessible name)
    expect(page.locator("#upload").get_by_role("cell", name="lighthouse.pdf")).to_be_visible()
    page.locator("#index-button").click()
    log = page.locator("#index-log textarea")
    expect(log).to_have_value(re.compile(r"indexed\s+lighthouse\.pdf \(2 pages\)"), timeout=60_000)
    expect(log).to_have_value(re.compile(r"done: 1 indexed"))
    expect(log).not_to_have_value(re.compile("warning|error|Traceback"))
    expect(page.locator("#sources")).to_contain_text(re.compile(r"lighthouse\s*\.pdf"))

    page.locator("#question textarea, #question input").first.fill(QUESTION)
    page.locator("#ask-button").click()
    answer = page.locator("#answer")
    expect(answer).to_contain_text(FACT)
    expect(answer).to_contain_text("[lighthouse.pdf p.2]")
    link = page.locator("#citations a", has_text="lighthouse.pdf p.2")
    expect(link).to_be_visible()
    # the citation links to the page image
    page_image = page.request.get(urljoin(served, link.get_attribute("href") or ""))
    assert (page_image.status, page_image.headers.get("content-type")) == (200, "image/png")

    thumbnails = page.locator("#pages img")
    expect(thumbnails).to_have_count(2)
    expect(thumbnails.first).to_be_visible()
    expect(page.locator("#pages")).to_contain_text("lighthouse.pdf p.2 · ")
    expect(page.locator("#pages")).to_contain_text("· cited")
    box = thumbnails.first.bounding_box()
    assert box is not None and box["width"] > 20 and box["height"] > 20, box
    # the thumbnail is a real page image: the browser decoded it
    page.wait_for_function(
        "() => { const img = document.querySelector('#pages img'); return img && img.naturalWidth > 100; }"
    )

    thumbnails.first.click()  # opens the page large
    expect(page.locator("#page-view img")).to_be_visible()
    expect(page.locator("#page-note")).to_contain_text("lighthouse.pdf p.2")

    shot = tmp_path / "serve.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    target = os.environ.get("PAGESIGHT_SCREENSHOT")
    if target:
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, target)

    # the page loaded nothing from outside this machine (fonts, scripts, analytics)
    web = [urlsplit(u) for u in requested if urlsplit(u).scheme in ("http", "https")]
    outside = {u.geturl() for u in web if u.hostname not in LOOPBACK}
    assert not outside, sorted(outside)
