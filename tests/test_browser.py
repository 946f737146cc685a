"""The demo in a real headless browser: Debian's chromium driven by playwright.

Needs /usr/bin/chromium (`apt-get install -y chromium`); never `playwright install`. Skipped
without it, unless REQUIRE_BROWSER=1. Screenshots go to the test's tmp dir and, if set, to
$SEQ2SEQ_SCREENSHOT_DIR.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Page

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import app  # noqa: E402

pytestmark = pytest.mark.slow
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
]
# The heatmap is an <img> (matplotlib PNG); an svg or canvas would do too. The block's label
# has a small svg icon, hence the size check.
HEATMAP_DRAWN = """() => {
    const drawn = (el) => {
        const box = el.getBoundingClientRect();
        const loaded = el.tagName !== 'IMG' || (el.complete && el.naturalWidth > 0);
        return loaded && box.width > 100 && box.height > 100;  // not the label's icon
    };
    const els = document.querySelectorAll('#attention img, #attention canvas, #attention svg');
    return Array.from(els).some(drawn);
}"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def page_url(trained_run: Path) -> Iterator[str]:
    demo = app.build_demo(app.load_translators(trained_run.parent))
    port = free_port()
    try:
        demo.launch(
            server_name="127.0.0.1",
            server_port=port,
            prevent_thread_lock=True,
            quiet=True,
            css=app.CSS,
        )
        yield f"http://127.0.0.1:{port}/"
    finally:
        demo.close()


def save_screenshot(page: Page, tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    page.screenshot(path=str(path), full_page=True)
    out_dir = os.environ.get("SEQ2SEQ_SCREENSHOT_DIR")
    if out_dir:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(out_dir) / name)
    return path


def test_translate_in_the_browser(chromium: Path, page_url: str, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(page_url, timeout=60_000)
            page.wait_for_selector("#source textarea", timeout=60_000)
            assert "German → English" in page.inner_text("#pair")

            page.click("#translate")  # empty source: a toast, not a stack trace
            page.wait_for_selector("text=Please enter a sentence to translate.", timeout=30_000)
            example = app.read_examples("de")[0]
            page.get_by_text(example[:30]).first.click()
            page.wait_for_function(
                "text => document.querySelector('#source textarea').value === text",
                arg=example,
                timeout=30_000,
            )

            page.fill("#source textarea", "Ein Mann fährt mit dem Fahrrad die Straße entlang.")
            page.click("#translate")
            page.wait_for_function(
                "() => document.querySelector('#output textarea').value.length > 0",
                timeout=60_000,
            )
            page.wait_for_function(HEATMAP_DRAWN, timeout=60_000)
            assert page.input_value("#output textarea").strip()
            assert " ms" in page.inner_text("#timing")
            shot = save_screenshot(page, tmp_path, "demo_translate.png")
            assert shot.stat().st_size > 10_000

            page.get_by_role("tab", name="About the models").click()
            page.wait_for_selector("text=Best validation BLEU", timeout=30_000)
            save_screenshot(page, tmp_path, "demo_about.png")
        finally:
            browser.close()
