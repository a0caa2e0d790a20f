"""The Webhooks page in the browser: an endpoint added with its events, its secret shown once, a test event
sent and its refused try followed without a reload (the stack does not allow loopback), its secret rotated,
then removed."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.webhook_receiver import receiving

pytestmark = pytest.mark.e2e


def test_add_an_endpoint_send_a_test_and_follow_its_delivery(page, live_server):
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto(f"{live_server}/webhooks")
    expect(page.locator("nav a.active")).to_have_text("Webhooks")
    page.fill("#webhook-url", "ftp://hooks.example/in")
    page.click("#webhook-create")
    expect(page.locator("#webhook-error")).to_have_text("A webhook URL starts with http:// or https://.")
    with receiving() as (url, received):
        page.fill("#webhook-url", f"{url}/hook")
        page.fill("#webhook-description", "chat")
        page.uncheck('input[name="events"][value="batch.done"]')
        page.check('input[name="events"][value="test"]')
        page.click("#webhook-create")
        expect(page.locator("#webhook-secret")).to_be_visible()
        expect(page.locator("#webhook-secret-value")).to_have_text(re.compile(r"^whsec_[A-Za-z0-9+/=]{40,}$"))
        row = page.locator("#webhook-table tr[data-endpoint]", has_text=f"{url}/hook")
        expect(row.locator("td").nth(1)).to_contain_text("test")
        expect(row.locator("td").nth(1)).not_to_contain_text("batch.done")
        page.evaluate("window.notReloaded = true")
        row.locator(".webhook-test").click()
        delivery = page.locator("#delivery-table tbody tr").first
        expect(delivery.locator("td").nth(0)).to_have_text("test")
        # the stack's worker refuses loopback (not in its WEBHOOK_ALLOWED_NETWORKS): one try, in words
        expect(delivery.locator("td").nth(4)).to_have_text("1")
        expect(delivery.locator("td").nth(5)).to_contain_text("a loopback address")
        expect(delivery.locator("td").nth(1)).to_have_text("waiting")
        assert received.requests == []
        first_secret = page.locator("#webhook-secret-value").text_content()
        row.locator(".webhook-rotate").click()
        expect(page.locator("#webhook-secret-value")).not_to_have_text(first_secret)
        expect(page.locator("#webhook-secret-value")).to_have_text(re.compile(r"^whsec_"))
        row.locator(".webhook-delete").click()
        expect(page.locator("#webhook-table tr[data-endpoint]", has_text=f"{url}/hook")).to_have_count(0)
        expect(page.locator("#delivery-card")).to_be_hidden()
    assert page.evaluate("window.notReloaded") is True and page.js_errors == []
