"""Headless Debian Chromium driven by Playwright."""
from __future__ import annotations

import base64
import shutil

import pytest
from playwright.sync_api import expect, sync_playwright

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]
# Deadlines for a loaded two-core machine, where the stack's worker trains beside the browser: a check
# waits for what must happen and returns as soon as it has; only a page that never gets there waits this long.
EXPECT_SECONDS = 30
ACTION_SECONDS = 60
expect.set_options(timeout=EXPECT_SECONDS * 1000)


@pytest.fixture(scope="session")
def browser():
    executable = shutil.which("chromium") or "/usr/bin/chromium"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def open_page(browser, **context_options):
    """A page in a context of its own (`context_options` as Playwright's new_context takes them), whose
    uncaught script errors collect in `page.js_errors`; close its context when done."""
    context = browser.new_context(**context_options)
    context.set_default_timeout(ACTION_SECONDS * 1000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.js_errors = errors
    return page


@pytest.fixture
def page(browser):
    page = open_page(browser, viewport={"width": 1280, "height": 900})
    yield page
    page.context.close()


DROP = """([selector, payload, name, type]) => {
  const bytes = Uint8Array.from(atob(payload), (c) => c.charCodeAt(0));
  const transfer = new DataTransfer();
  transfer.items.add(new File([bytes], name, { type }));
  const target = document.querySelector(selector);
  for (const event of ["dragenter", "dragover", "drop"]) {
    target.dispatchEvent(new DragEvent(event, { dataTransfer: transfer, bubbles: true, cancelable: true }));
  }
}"""


def drop_file(page, selector: str, data: bytes, name: str, mime: str = "image/png") -> None:
    """Drag a file from outside the browser onto `selector`, as a person does."""
    page.evaluate(DROP, [selector, base64.b64encode(data).decode(), name, mime])
