"""The audit log page in the browser: entries of one actor a page at a time with "Load more", narrowed by
the filters without a reload, actions and details in words, in English and in Chinese."""
from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import open_page
from webapp.extensions import db
from webapp.models import AuditEntry, utcnow

pytestmark = pytest.mark.e2e
PAGE_SIZE = 50  # static/js/audit.js


@pytest.fixture
def seeded(stack_app):
    """55 entries of an actor of their own, the newest a refused sign-in from 10.7.7.7; removed afterwards."""
    actor = f"auditor-{uuid.uuid4().hex[:6]}"
    now = utcnow()
    with stack_app.app_context():
        rows = [AuditEntry(at=now - timedelta(minutes=60 - n), actor=actor, action="dataset.delete",
                           subject_type="dataset", subject_id=str(n), address="10.7.7.1",
                           details={"name": f"set {n}", "num_images": n}) for n in range(54)]
        rows.append(AuditEntry(at=now, actor=actor, action="user.sign_in_failed", subject_type="user",
                               address="10.7.7.7", details={"username": "eve", "reason": "wrong_password"}))
        db.session.add_all(rows)
        db.session.commit()
    yield actor
    with stack_app.app_context():
        db.session.execute(db.delete(AuditEntry).where(AuditEntry.actor == actor))
        db.session.commit()


def test_filters_apply_without_a_reload_and_more_entries_load_on_request(page, live_server, seeded):
    page.goto(f"{live_server}/audit")
    expect(page.locator("nav a.active")).to_have_text("Audit")
    page.evaluate("window.notReloaded = true")
    rows = page.locator("#audit-table tbody tr")

    page.fill("#audit-actor", seeded)
    expect(rows).to_have_count(PAGE_SIZE)
    expect(page.locator("#audit-summary")).to_have_text(f"{PAGE_SIZE} entries shown")
    first = rows.first.locator("td")
    expect(first.nth(1)).to_have_text(seeded)
    expect(first.nth(2)).to_have_text("10.7.7.7")
    expect(first.nth(3)).to_have_text("sign-in refused")
    expect(first.nth(4)).to_have_text("user")
    expect(first.nth(5).locator("li")).to_have_text(["user name: eve", "reason: wrong password"])
    page.click("#audit-more")
    expect(rows).to_have_count(55)
    expect(page.locator("#audit-more")).to_be_hidden()
    expect(rows.last.locator("td").nth(3)).to_have_text("dataset deleted")
    expect(rows.last.locator("td").nth(4)).to_have_text("dataset 0")
    expect(rows.last.locator("td").nth(5).locator("li")).to_have_text(["name: set 0", "images: 0"])

    page.select_option("#audit-action", "user.sign_in_failed")
    expect(rows).to_have_count(1)
    page.fill("#audit-address", "10.7.7.1")
    expect(page.locator("#audit-empty")).to_be_visible()
    expect(rows).to_have_count(0)
    page.select_option("#audit-action", "dataset.")
    expect(rows).to_have_count(PAGE_SIZE)
    expect(page.locator("#audit-empty")).to_be_hidden()
    assert page.evaluate("window.notReloaded") is True
    assert page.js_errors == []


def test_actions_and_details_in_chinese(browser, live_server, seeded):
    page = open_page(browser, locale="zh-CN", extra_http_headers={"Accept-Language": "zh-CN,zh;q=0.9"})
    try:
        page.goto(f"{live_server}/audit")
        expect(page.locator("h1")).to_have_text("审计日志")
        page.fill("#audit-actor", seeded)
        page.select_option("#audit-action", "user.sign_in_failed")
        cells = page.locator("#audit-table tbody tr").first.locator("td")
        expect(cells.nth(3)).to_have_text("登录被拒绝")
        expect(cells.nth(4)).to_have_text("用户")
        expect(cells.nth(5).locator("li")).to_have_text(["用户名: eve", "原因: 密码错误"])
        assert page.js_errors == []
    finally:
        page.context.close()
