"""A reviewer labels a doubtful production answer on the Feedback page in one click, and an admin turns the
review queue on and off again there, without a reload; the section reads in Chinese too."""
from __future__ import annotations

import uuid

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import open_page
from tests.e2e.test_accessibility import severe_violations
from tests.images import noisy_image
from webapp.extensions import db
from webapp.feedback import store
from webapp.models import ReviewItem

pytestmark = pytest.mark.e2e
VERSION = 4242  # no such version on the shared stack: its item offers its top-2 classes alone


@pytest.fixture
def waiting_item(stack_app):
    """One doubtful answer in the queue with its image, as sampling leaves it; removed when the test ends."""
    prediction_id = str(uuid.uuid4())
    with stack_app.test_request_context():
        kept = store.keep_image(f"review-{prediction_id}", noisy_image(5, (200, 60, 60), size=(64, 64)))
        item = ReviewItem(prediction_id=prediction_id, version=VERSION, arm="production", first_class="玫瑰",
                          first_confidence=0.48, second_class="tulip", second_confidence=0.44, margin=0.04,
                          abstained=False, anonymous=False, image_name=kept.name, image_bytes=kept.size)
        db.session.add(item)
        db.session.commit()
        item_id = item.id
    yield item_id
    with stack_app.test_request_context():
        db.session.delete(db.session.get(ReviewItem, item_id))
        db.session.commit()
        store.remove_images([kept.name])


def test_one_click_labels_an_item_and_the_admin_switch_works(page, live_server, waiting_item):
    page.goto(f"{live_server}/feedback")
    card = page.locator(f'.review-item[data-item="{waiting_item}"]')
    expect(card.locator(".review-answer")).to_contain_text("玫瑰 48%")
    expect(card.locator("img")).to_have_js_property("complete", True)
    assert card.locator("img").evaluate("image => image.naturalWidth") > 0
    assert severe_violations(page) == []  # with an item, its buttons and menu, and the admin's settings shown
    card.get_by_role("button", name="tulip").click()
    expect(card).to_have_count(0)  # gone from the waiting list, without a reload
    page.select_option("#review-status", "labelled")
    expect(card.locator(".review-label")).to_have_text("Labelled tulip")
    expect(card.get_by_role("button", name="tulip")).to_have_class("button review-choice primary")

    switch, off_notice = page.locator('#review-settings input[name="enabled"]'), page.locator("#review-off")
    was_on = switch.is_checked()
    for on in (not was_on, was_on):  # the stack is shared: the queue ends as it was
        switch.set_checked(on)
        page.click("#review-save")
        expect(off_notice).to_have_js_property("hidden", on)
    assert page.js_errors == []


def test_the_review_queue_reads_in_chinese(browser, live_server, waiting_item):
    page = open_page(browser, locale="zh-CN", extra_http_headers={"Accept-Language": "zh-CN,zh;q=0.9"})
    try:
        page.goto(f"{live_server}/feedback")
        expect(page.locator("#review-title")).to_have_text("审核队列")
        card = page.locator(f'.review-item[data-item="{waiting_item}"]')
        expect(card.get_by_role("button", name="忽略")).to_be_visible()
        assert page.js_errors == []
    finally:
        page.context.close()
