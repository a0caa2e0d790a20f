"""The Batch page in the browser: a run started from a .zip with a chosen version, its progress followed to the end
without a reload, its summary with the refused file, and its download links."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect
from sqlalchemy import func, select

from tests.factories import register_bundle
from tests.images import image_bytes, zip_bytes
from webapp.extensions import db
from webapp.models import ModelVersion

pytestmark = pytest.mark.e2e


def test_start_a_run_from_a_zip_and_follow_it_to_its_downloads(page, live_server, stack_app, trained):
    with stack_app.app_context():
        version = (db.session.scalar(select(func.max(ModelVersion.version))) or 0) + 1
    register_bundle(stack_app, trained[1], version)
    files = {f"{name}/{n}.png": image_bytes(colour, size=(34 + n, 30), fmt="PNG") for n in range(4)
             for name, colour in (("red", (220, 40, 40)), ("blue", (40, 60, 220)))}
    archive = zip_bytes({**files, "readme.txt": b"words"})
    blocked: list[str] = []
    page.on("console", lambda message: blocked.append(message.text)
            if "Content Security Policy" in message.text else None)
    page.goto(f"{live_server}/batch")
    expect(page.locator("nav a.active")).to_have_text("Batch")
    page.locator("#batch-zip-input").set_input_files(
        {"name": "trip.zip", "mimeType": "application/zip", "buffer": archive})
    expect(page.locator("#batch-selection")).to_have_text("trip.zip")
    page.locator("#batch-version").select_option(str(version))
    page.evaluate("window.notReloaded = true")
    page.locator("#batch-start").click()
    run = page.locator(".batch-run", has=page.locator(".batch-run-input", has_text=f"trip.zip · v{version}")).first
    expect(run.locator(".badge")).to_have_text("done", timeout=60_000)
    expect(run.locator(".batch-counts")).to_have_text("9 of 9 files (100%)")
    expect(run.locator(".batch-summary")).to_contain_text("1 refused")
    expect(run.locator(".batch-refused")).to_have_text("Refused: not_an_image: 1")
    run_id = run.get_attribute("data-id")
    expect(run.get_by_role("link", name="Download CSV")).to_have_attribute(
        "href", f"/api/batch-predictions/{run_id}/results.csv")
    expect(run.get_by_role("link", name="Download JSON Lines")).to_have_attribute(
        "href", f"/api/batch-predictions/{run_id}/results.jsonl")
    assert re.fullmatch(r"\d+", run_id)
    assert page.evaluate("window.notReloaded") is True
    assert page.js_errors == [] and blocked == []
