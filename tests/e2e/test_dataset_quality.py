"""A person reads the quality report on the dataset page, fixes a leak with one click, sees the new revision
without a reload, and trains on it: in English and in Chinese."""
from __future__ import annotations

import io
import re

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import open_page
from tests.e2e.test_training_ui import fill_fast_options
from tests.images import zip_bytes
from tests.integration.test_training import finished, wait_for
from tests.stack import upload_dataset
from tests.unit.webapp.datasets.test_quality_pages import planted_files

pytestmark = pytest.mark.e2e
LANGUAGES = {"en": ("en-US", "en-US,en;q=0.9"), "zh": ("zh-CN", "zh-CN,zh;q=0.9")}
# What the page says, per language: the section's title and the new revision's line.
SAYS = {"en": {"quality": "Data quality", "revision": "Revision 2"},
        "zh": {"quality": "数据质量", "revision": "修订 2"}}
LOADED = "(images) => images.every((image) => image.complete && image.naturalWidth > 0)"


@pytest.fixture
def planted(stack_client):
    """A dataset with a train/val near copy and an exact duplicate, deleted afterwards (other modules count
    datasets); yields its id."""
    seed = 31_000
    files = planted_files(seed=seed)
    dataset = upload_dataset(stack_client, {"name": "planted leak",
                                            "archive": (io.BytesIO(zip_bytes(files)), "planted.zip")})
    assert dataset["status"] == "ready", dataset
    yield dataset["id"]
    assert stack_client.delete(f"/api/datasets/{dataset['id']}").status_code == 200


@pytest.mark.parametrize("language", LANGUAGES)
def test_fix_the_leak_then_train_on_the_new_revision(browser, live_server, stack_client, planted, language):
    locale, accept = LANGUAGES[language]
    page = open_page(browser, locale=locale, extra_http_headers={"Accept-Language": accept},
                     viewport={"width": 1280, "height": 900})
    try:
        page.goto(f"{live_server}/datasets/{planted}")
        expect(page.locator("#quality-title")).to_contain_text(SAYS[language]["quality"])
        leak = page.locator("#quality-leakage .pair")
        expect(leak).to_have_count(1)
        expect(leak.locator("figcaption .path")).to_have_text(["train/cat/0.png", "val/cat/leak.jpg"])
        page.wait_for_function(f"() => ({LOADED})([...document.querySelectorAll('#quality-leakage img')])")
        expect(page.locator("#quality-duplicates .pair")).to_contain_text("train/dog/copy.png")

        page.click('[data-fix="move_leaked_to_train"]')
        expect(page.locator("#revision-line")).to_contain_text(SAYS[language]["revision"])
        note = stack_client.get(f"/api/datasets/{planted}/revisions/2",
                                headers={"Accept-Language": accept}).get_json()["note"]
        expect(page.locator("#revision-status")).to_contain_text(note)
        expect(page.locator("#revision-list .revision")).to_have_count(2)
        expect(page.locator('#revision-list .revision[data-number="2"] .revision-note')).to_have_text(note)
        expect(page.locator("#quality-leakage")).to_have_count(0)
        # the moved copy is now a duplicate within train: the report of revision 2 says so
        expect(page.locator("#quality-duplicates .pair")).to_have_count(2)
        expect(page.locator("#quality-duplicates")).to_contain_text("val/cat/leak.jpg")
        assert page.url.endswith(f"/datasets/{planted}?revision=2")
        expect(page.locator("#class-table tr[data-class='cat'] .val")).to_have_text("2")

        page.select_option("#train-revision", "2")
        fill_fast_options(page, "1")
        page.click("#train-button")
        page.wait_for_url(re.compile(r"/jobs/\d+$"))
        job_id = int(page.url.rsplit("/", 1)[1])
        assert stack_client.get(f"/api/jobs/{job_id}").get_json()["revision"] == 2
        stack_client.post(f"/api/jobs/{job_id}/cancel")  # it trained on the revision: no need to finish
        wait_for(stack_client, job_id, finished)
        assert page.js_errors == []
    finally:
        page.context.close()
