"""A shared studio in the browser: people sign in, then upload, train and predict with every page under
the Content-Security-Policy; an admin adds a teammate, who makes and revokes an API token, changes their
password and signs out everywhere."""
from __future__ import annotations

import re
import uuid
import zipfile

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import drop_file
from tests.e2e.test_training_ui import fill_fast_options
from tests.images import noisy_image
from tests.integration.test_training import COLOURS
from tests.stack import serving
from webapp import create_app
from webapp.accounts import services

pytestmark = pytest.mark.e2e
PASSWORD = "team password 1"


@pytest.fixture
def team(stack):
    """The stack's studio with sign-in on, served over HTTP, and one admin and one member."""
    app = create_app({**stack["config"], "AUTH": "on"})
    suffix = uuid.uuid4().hex[:6]
    names = {"admin": f"管理员-{suffix}", "member": f"li-{suffix}"}
    with app.app_context():
        for role, name in names.items():
            services.create_user(name, PASSWORD, role)
    with serving(app) as url:
        yield url, names


def watch_csp(page) -> list[str]:
    """Console reports of anything the Content-Security-Policy blocked."""
    blocked: list[str] = []
    page.on("console", lambda message: blocked.append(message.text)
            if "Content Security Policy" in message.text else None)
    return blocked


def sign_in(page, url: str, username: str, start: str = "/datasets") -> None:
    page.goto(url + start)
    page.wait_for_url(re.compile(r"/sign-in\?next="))
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("#sign-in-button")
    page.wait_for_url(re.compile(re.escape(start) + "$"))
    expect(page.locator("#account-link")).to_contain_text(username)


def colours_zip(path) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        for i, (name, colour) in enumerate(COLOURS.items()):
            for n in range(30):
                archive.writestr(f"{name}/{n}.png", noisy_image(90_000 + i * 1000 + n, colour))


def test_a_member_signs_in_and_goes_from_upload_to_prediction(page, team, tmp_path):
    url, names = team
    blocked = watch_csp(page)
    page.goto(url + "/api/datasets")
    assert "unauthorized" in page.content()
    wrong = page.goto(url + "/sign-in")
    page.fill("#username", names["member"])
    page.fill("#password", "not the password")
    page.click("#sign-in-button")
    expect(page.locator("#sign-in-error")).to_have_text("The user name or password is wrong.")
    assert wrong.headers["content-security-policy"].startswith("default-src 'self'")

    sign_in(page, url, names["member"])
    expect(page.locator("#account-link .role")).to_have_text("member")
    expect(page.locator("nav a", has_text="Users")).to_have_count(0)
    colours_zip(tmp_path / "colours.zip")
    page.set_input_files("#zip-input", str(tmp_path / "colours.zip"))
    page.click("#upload-button")
    page.wait_for_url(re.compile(r"/datasets/\d+$"))
    expect(page.locator("#class-table tbody tr")).to_have_count(3, timeout=60_000)

    fill_fast_options(page, "3")
    page.click("#train-button")
    page.wait_for_url(re.compile(r"/jobs/\d+$"))
    expect(page.locator("#job-status")).to_have_text("succeeded", timeout=300_000)
    version = re.search(r"version (\d+)", page.locator("#stat-model").inner_text()).group(1)

    page.goto(url + "/predict")
    page.select_option("#version-picker", version)
    drop_file(page, "#drop-image", noisy_image(4242, COLOURS["蓝色"], size=(80, 60)), "blue.png")
    expect(page.locator(".prediction .answer")).to_have_text("蓝色", timeout=30_000)
    expect(page.locator(".prediction .status")).to_contain_text(f"model v{version}")

    page.click("#sign-out")
    page.wait_for_url(re.compile(r"/sign-in$"))
    page.goto(url + "/jobs")
    page.wait_for_url(re.compile(r"/sign-in\?next="))
    assert page.js_errors == [] and blocked == []


def test_an_admin_adds_a_viewer_who_makes_and_revokes_a_token(page, team, browser):
    url, names = team
    blocked = watch_csp(page)
    sign_in(page, url, names["admin"], start="/users")
    viewer = f"viewer-{uuid.uuid4().hex[:6]}"
    page.fill("#new-username", viewer)
    page.fill("#new-password", PASSWORD)
    page.select_option("#new-role", "viewer")
    page.click("#user-create")
    expect(page.locator(f'tr[data-user="{viewer}"] select.user-role')).to_have_value("viewer")
    page.fill("#new-username", "x")
    page.fill("#new-password", "short")
    page.click("#user-create")
    expect(page.locator("#user-error")).to_contain_text("at least 8 characters")

    context = browser.new_context()
    other = context.new_page()
    other.js_errors = []
    other.on("pageerror", lambda exc: other.js_errors.append(str(exc)))
    sign_in(other, url, viewer, start="/account")
    other.fill("#token-name", "产线 3 相机")
    other.click("#token-create")
    expect(other.locator("#new-token-value")).to_have_text(re.compile(r"^isk_\S{40,}$"))
    token = other.locator("#new-token-value").inner_text()
    expect(other.locator("#token-table tbody tr")).to_have_count(1)
    expect(other.locator("#token-table tbody tr td").first).to_have_text("产线 3 相机")
    expect(other.locator("#token-table tbody tr td").nth(4)).not_to_have_text("does not expire")  # 90 days
    answer = other.request.get(url + "/api/me", headers={"Authorization": f"Bearer {token}"})
    assert answer.json()["user"]["role"] == "viewer"
    refused = other.request.post(url + "/api/jobs", headers={"Authorization": f"Bearer {token}"},
                                 data={"dataset_id": 1})
    assert refused.status == 403 and refused.json()["code"] == "forbidden"
    other.on("dialog", lambda dialog: dialog.accept())
    other.click(".revoke-token")
    expect(other.locator("#tokens-empty")).to_be_visible()
    gone = other.request.get(url + "/api/me", headers={"Authorization": f"Bearer {token}"})
    assert gone.status == 401

    other.fill("#current-password", PASSWORD)
    other.fill("#new-password", "a new password 2")
    other.fill("#new-password-again", "a new password 2")
    other.click("#password-change")
    expect(other.locator("#password-done")).to_contain_text("this one goes on")
    other.reload()  # still signed in, with the fresh session the change gave this browser
    expect(other.locator("#account-link")).to_contain_text(viewer)
    other.click("#sign-out-everywhere")
    other.wait_for_url(re.compile(r"/sign-in$"))
    assert other.request.get(url + "/api/me").status == 401
    assert other.js_errors == []
    context.close()
    assert page.js_errors == [] and blocked == []
