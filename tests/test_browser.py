"""The demo in a real headless browser: Debian's chromium driven by playwright.

Needs /usr/bin/chromium (`apt-get install -y chromium`); never `playwright install`. Skipped
without it, unless REQUIRE_BROWSER=1. Screenshots go to the test's tmp dir and, if set, to
$SEQ2SEQ_SCREENSHOT_DIR.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

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

# Both of the slider's inputs (number box and range) follow its interactive flag.
BEAM_SLIDER_DISABLED = """disabled => {
    const inputs = document.querySelectorAll('input[aria-label$="for Beam size"]');
    return inputs.length === 2 && Array.from(inputs).every((el) => el.disabled === disabled);
}"""
# The n-best table is an ARIA grid: one row per candidate, read off its cells' text.
NBEST_ROWS = """() => Array.from(document.querySelectorAll('#nbest [role=row]'))
    .map((row) => Array.from(row.querySelectorAll('[role=gridcell]')))
    .filter((cells) => cells.length > 0)
    .map((cells) => cells.map((cell) => cell.innerText.trim()))"""
NBEST_RENDERED = """() => {
    const grid = document.querySelector('#nbest [role=grid]');
    const rows = document.querySelectorAll('#nbest [role=row] [role=gridcell]:first-child');
    return rows.length > 0 && rows.length === Number(grid.getAttribute('aria-rowcount')) - 1;
}"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def page_url(trained_run: Path) -> Iterator[str]:
    """The page over the trained German → English run and the shipped English → German one."""
    translators = app.load_translators(trained_run.parent)
    shipped = app.load_translators(REPO / "checkpoints")
    en_de = [
        name
        for name, t in shipped.items()
        if t.language_pair == ("en", "de") and not t.multilingual
    ]
    assert en_de, "checkpoints/ has no English → German run"
    with served({**translators, en_de[0]: shipped[en_de[0]]}) as url:
        yield url


@contextlib.contextmanager
def served(translators: dict[str, app.Translator]) -> Iterator[str]:
    """The page over ``translators``, served on a free port of 127.0.0.1; its URL."""
    demo = app.build_demo(translators)
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


@pytest.fixture(scope="module")
def browser(chromium: Path) -> Iterator[Browser]:
    """One headless chromium for the module's tests; each test opens its own page."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser: Browser, page_url: str) -> Iterator[Page]:
    """The demo, loaded and ready for input."""
    with opened(browser, page_url, "#source textarea") as page:
        yield page


@contextlib.contextmanager
def opened(browser: Browser, url: str, ready: str, height: int = 900) -> Iterator[Page]:
    """A new page at ``url``, once the element ``ready`` (a CSS selector) is there."""
    page = browser.new_page(viewport={"width": 1280, "height": height})
    try:
        page.goto(url, timeout=60_000)
        page.wait_for_selector(ready, timeout=60_000)
        yield page
    finally:
        page.close()


def save_screenshot(page: Page, tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    page.screenshot(path=str(path), full_page=True)
    out_dir = os.environ.get("SEQ2SEQ_SCREENSHOT_DIR")
    if out_dir:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(out_dir) / name)
    return path


def translate_and_wait(page: Page, text: str) -> None:
    """Translate ``text`` and wait for the timing line that says it is done."""
    page.fill("#source textarea", text)
    page.click("#translate")
    page.wait_for_function(
        "() => document.querySelector('#timing').innerText.includes('Translated')",
        timeout=60_000,
    )


def test_translate_in_the_browser(page: Page, tmp_path: Path) -> None:
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


def test_decoding_controls_nbest_and_model_switch(page: Page) -> None:
    """Greedy locks the beam slider; beam K shows K ranked candidates per line; switching the
    model changes the language pair and the examples."""
    page.get_by_label("greedy", exact=True).check()
    page.wait_for_function(BEAM_SLIDER_DISABLED, arg=True, timeout=10_000)
    page.get_by_label("beam", exact=True).check()
    page.wait_for_function(BEAM_SLIDER_DISABLED, arg=False, timeout=10_000)

    k = 3  # not the run's default beam, so a slider value that never arrives shows
    beam_number = page.get_by_label("number input for Beam size")
    beam_number.fill(str(k))
    beam_number.press("Enter")
    translate_and_wait(page, "Ein Mann fährt mit dem Fahrrad.\nZwei Hunde spielen im Schnee.")
    assert f"beam {k}" in page.inner_text("#timing")
    page.wait_for_function(NBEST_RENDERED, timeout=30_000)
    rows = [
        (int(line), int(rank), text, float(score))
        for line, rank, text, score in page.evaluate(NBEST_ROWS)
    ]
    outputs = page.input_value("#output textarea").split("\n")
    for line in (1, 2):
        candidates = [row for row in rows if row[0] == line]
        assert [rank for _, rank, _, _ in candidates] == list(range(1, k + 1)), rows
        scores = [score for *_, score in candidates]
        assert scores == sorted(scores, reverse=True), f"line {line} not best first: {rows}"
        assert candidates[0][2] == outputs[line - 1]
    assert len(rows) == 2 * k, rows

    current = page.input_value("#model input")
    page.click("#model input")
    page.get_by_role("option").filter(has_not_text=current).first.click()
    page.wait_for_function(
        "() => document.querySelector('#pair').innerText.includes('English → German')",
        timeout=30_000,
    )
    english, german = app.read_examples("en")[0], app.read_examples("de")[0]
    page.get_by_text(english[:30]).first.wait_for(state="visible", timeout=30_000)
    assert not page.get_by_text(german[:30]).first.is_visible()


def test_sample_mode_in_the_browser(page: Page) -> None:
    """Sample mode counts samples with the beam slider, and the sampling controls it shows reach
    the translation: with top-k 1 every sample is the likeliest output."""
    page.get_by_label("sample", exact=True).check()
    samples = page.get_by_label("number input for Samples")
    samples.wait_for(state="visible", timeout=10_000)
    samples.fill("3")
    samples.press("Enter")
    top_k = page.get_by_label("number input for Top-k (0: off)")
    top_k.fill("1")
    top_k.press("Enter")
    translate_and_wait(page, "Ein Mann fährt mit dem Fahrrad.")
    timing = page.inner_text("#timing")
    assert "3 samples" in timing and "top-k 1" in timing, timing
    page.wait_for_function(NBEST_RENDERED, timeout=30_000)
    rows = page.evaluate(NBEST_ROWS)
    output = page.input_value("#output textarea")
    assert [(line, rank) for line, rank, _, _ in rows] == [("1", "1"), ("1", "2"), ("1", "3")]
    assert output and all(text == output for _, _, text, _ in rows), rows


def test_a_failed_request_clears_the_timing_line_and_the_heatmap(page: Page) -> None:
    translate_and_wait(page, "Ein Hund läuft über die Wiese.")
    page.wait_for_function(HEATMAP_DRAWN, timeout=60_000)
    page.fill("#source textarea", "")
    page.click("#translate")
    page.wait_for_selector("text=Please enter a sentence to translate.", timeout=30_000)
    page.wait_for_function(
        "() => document.querySelector('#timing').innerText.trim() === ''", timeout=30_000
    )
    page.wait_for_function(f"() => !({HEATMAP_DRAWN})()", timeout=30_000)


# ---------------------------------------------------------------------------------------------
# A multilingual model: any direction from the dropdowns, and every language side by side

PAIR_SAYS = "text => document.querySelector('#pair').innerText.includes(text)"
BOX_FILLED = """id => {
    const box = document.querySelector(`#${id} textarea`);
    return box !== null && box.value.trim().length > 0;
}"""


@pytest.fixture(scope="module")
def multi_page_url(trained_multilingual_run: Path, trained_run: Path) -> Iterator[str]:
    """The page over the tiny multilingual run (first) and the German → English one."""
    translators = {
        **app.load_translators(trained_multilingual_run.parent),
        **app.load_translators(trained_run.parent),
    }
    with served(translators) as url:
        yield url


@pytest.fixture
def multi_page(browser: Browser, multi_page_url: str) -> Iterator[Page]:
    with opened(browser, multi_page_url, "#src-lang input", height=1000) as page:
        yield page


def choose(page: Page, dropdown: str, option: str) -> None:
    """Pick ``option`` (the shown name) in the dropdown with elem_id ``dropdown``."""
    page.click(f"#{dropdown} input")
    page.locator(f"#{dropdown}").get_by_role("option", name=option, exact=True).click()


def test_french_to_czech_in_the_browser(multi_page: Page, tmp_path: Path) -> None:
    page = multi_page
    page.wait_for_function(PAIR_SAYS, arg="English → German", timeout=30_000)
    choose(page, "src-lang", "French")
    page.wait_for_function(PAIR_SAYS, arg="French →", timeout=30_000)
    # French examples now, and French is no longer a target.
    page.get_by_text(app.read_examples("fr")[0][:30]).first.wait_for(state="visible")
    page.click("#tgt-lang input")
    czech = page.locator("#tgt-lang").get_by_role("option", name="Czech", exact=True)
    czech.wait_for(state="visible")
    options = page.locator("#tgt-lang").get_by_role("option").all_inner_texts()
    targets = [text.strip() for text in options]
    assert "French" not in targets and "Czech" in targets, targets
    czech.click()
    page.wait_for_function(PAIR_SAYS, arg="French → Czech", timeout=30_000)

    translate_and_wait(page, "Un homme fait du vélo dans la rue.")
    page.wait_for_function(HEATMAP_DRAWN, timeout=60_000)
    assert page.input_value("#output textarea").strip()
    assert not page.is_visible("#all-languages")
    save_screenshot(page, tmp_path, "demo_fr_cs.png")

    choose(page, "model", "tiny-de-en")  # a bilingual model: no language dropdowns
    page.wait_for_function(PAIR_SAYS, arg="German → English", timeout=30_000)
    page.locator("#src-lang").wait_for(state="hidden", timeout=30_000)


def test_all_languages_side_by_side_in_the_browser(multi_page: Page, tmp_path: Path) -> None:
    page = multi_page
    choose(page, "src-lang", "French")
    page.wait_for_function(PAIR_SAYS, arg="French →", timeout=30_000)
    choose(page, "tgt-lang", "All other languages")
    page.wait_for_function(PAIR_SAYS, arg="French → all other languages", timeout=30_000)
    page.locator("#all-languages").wait_for(state="visible", timeout=30_000)
    assert not page.is_visible("#output")

    translate_and_wait(page, "Un homme fait du vélo dans la rue.")
    assert "into 3 languages" in page.inner_text("#timing")
    for lang in ("en", "de", "cs"):
        page.wait_for_function(BOX_FILLED, arg=f"output-{lang}", timeout=60_000)
    assert not page.is_visible("#output-fr")
    labels = page.inner_text("#all-languages")
    assert all(name in labels for name in ("English", "German", "Czech")), labels
    page.wait_for_function(HEATMAP_DRAWN, timeout=60_000)  # the first language's attention
    save_screenshot(page, tmp_path, "demo_all_languages.png")
