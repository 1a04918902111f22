"""Debian's Chromium driven by Playwright, for the tests that look at the web UI: the
UI's own (tests/web/test_browser.py, on pytest-django's live server) and the end-to-end
ones against a real `camgate run`. Their screenshots go to test-artifacts/screenshots/,
for a human to look at."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


@contextmanager
def launched_chromium() -> Iterator:
    """Headless Chromium for the length of the block; skips the test where Playwright
    or Chromium is not installed."""
    playwright_sync = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed")
    with playwright_sync.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def watched_page(browser, base_url: str, contexts: list, problems: list, viewport=DESKTOP, color_scheme="light"):
    """A page in a context of its own (added to contexts, for closing); its script
    errors and console errors are added to problems."""
    context = browser.new_context(viewport=viewport, base_url=base_url, color_scheme=color_scheme)
    context.set_default_timeout(10_000)
    contexts.append(context)
    page = context.new_page()
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("console", lambda msg: msg.type == "error" and problems.append(f"console: {msg.text}"))
    return page


def sideways_overflow(page) -> list[str]:
    """What sticks out to the right of the page or of a table's scroll box (nothing, we hope)."""
    return page.evaluate("""() => {
        const boxes = [document.documentElement, ...document.querySelectorAll(".table-wrap:not([hidden])")];
        const found = [];
        for (const box of boxes) {
            if (box.scrollWidth <= box.clientWidth) continue;
            const right = box === document.documentElement ? window.innerWidth : box.getBoundingClientRect().right;
            for (const el of box.querySelectorAll("*")) {
                if (el.getBoundingClientRect().right > right + 0.5 && found.length < 5) {
                    found.push(`${el.tagName.toLowerCase()}.${el.className}: ${el.textContent.trim().slice(0, 40)}`);
                }
            }
            if (!found.length) found.push(`${box.className || box.tagName}: scrolls ${box.scrollWidth} > ${box.clientWidth}`);
        }
        return found;
    }""")
