"""The API reference page in the browser: Swagger UI from the studio's own copy, under the studio's content
security policy, listing every operation of the document and trying one with the page's session."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.e2e


def test_the_reference_lists_every_operation_and_tries_one_without_a_cdn(page, live_server, stack_client):
    spec = stack_client.get("/api/openapi.json").get_json()
    operations = sum(len(methods) for methods in spec["paths"].values())
    problems: list[str] = []
    page.on("console", lambda message: problems.append(message.text)
            if message.type == "error" or "Content Security Policy" in message.text else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    outside: list[str] = []
    page.on("request", lambda request: outside.append(request.url)
            if not request.url.startswith(live_server) and not request.url.startswith("data:") else None)

    page.goto(f"{live_server}/datasets")
    page.locator("nav a", has_text=re.compile(r"^API$")).click()
    expect(page).to_have_url(f"{live_server}/api/docs")
    expect(page.locator("nav a.active")).to_have_text("API")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Image Studio API")
    expect(page.locator(".swagger-ui .opblock")).to_have_count(operations)

    me = page.locator(".opblock-get", has=page.locator(".opblock-summary-path", has_text=re.compile(r"^/api/me$")))
    me.locator(".opblock-summary").click()
    me.locator("button.try-out__btn").click()
    me.locator("button.execute").click()
    expect(me.locator(".live-responses-table tbody td.response-col_status").first).to_have_text("200")
    expect(me.locator(".live-responses-table .microlight").first).to_contain_text('"auth_required"')
    assert problems == [] and outside == []
