"""A person runs a release from the Models page: promote, an experiment with live figures, roll back."""
import io

import pytest
from playwright.sync_api import expect
from sqlalchemy import func, select

from tests.factories import register_bundle
from tests.images import class_files, noisy_image, zip_bytes
from webapp.extensions import db
from webapp.models import ModelVersion
from tests.stack import upload_dataset

pytestmark = pytest.mark.e2e
STATS_SHOW = """([first, second, total]) => {
  const requests = [first, second].map((version) => {
    const cell = document.querySelectorAll(`#stats-table tr[data-version="${version}"] td`)[2];
    return cell ? Number(cell.textContent.replace(/,/g, "")) : 0;
  });
  return requests[0] + requests[1] >= total;
}"""


def test_promote_experiment_with_live_figures_and_roll_back(page, live_server, stack_app, stack_client, trained):
    with stack_app.app_context():
        newest = db.session.scalar(select(func.max(ModelVersion.version))) or 0
    before, first, second = newest + 1, newest + 2, newest + 3
    for version in (before, first, second):
        register_bundle(stack_app, trained[1], version)
    assert stack_client.put("/api/release", json={"production": before, "candidate": None}).status_code == 200
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto(f"{live_server}/models")

    page.locator(f'tr[data-version="{first}"] .promote-version').click()
    expect(page.locator("#production-version")).to_have_text(f"v{first}")
    expect(page.locator(f'tr[data-version="{first}"] .role')).to_have_text("production")
    expect(page.locator(f'tr[data-version="{first}"] .delete-version')).to_be_hidden()
    expect(page.locator("#rollback")).to_have_text(f"Roll back to v{before}")

    page.select_option("#candidate-choice", str(second))
    page.select_option("#candidate-share-choice", "25")
    page.locator("#start-experiment").click()
    expect(page.locator("#candidate-version")).to_have_text(f"v{second}")
    expect(page.locator("#candidate-share")).to_have_text("25% of clients")
    page.locator('.share[data-share="50"]').click()
    expect(page.locator("#candidate-share")).to_have_text("50% of clients")
    assert stack_client.get("/api/release").get_json()["candidate_share"] == 50

    for n in range(24):  # traffic from keyed clients, as scripts send it
        stack_client.post("/api/predict", data={"image": (io.BytesIO(noisy_image(n, (220, 40, 40))), "a.png")},
                          content_type="multipart/form-data", headers={"X-Client-Id": f"person-{n}"})
    rows = page.locator("#stats-table tbody tr")
    expect(page.locator(f'#stats-table tr[data-version="{second}"] td').nth(1)).to_have_text("candidate")
    expect(page.locator(f'#stats-table tr[data-version="{first}"] td').nth(1)).to_have_text("production")
    assert rows.count() >= 2
    # the figures arrive with the web process's periodic flushes: wait until the page shows all 24 requests
    page.wait_for_function(STATS_SHOW, arg=[first, second, 24])
    requests = [int(page.locator(f'#stats-table tr[data-version="{v}"] td').nth(2).inner_text().replace(",", ""))
                for v in (first, second)]
    assert sum(requests) >= 24 and min(requests) > 0

    page.locator("#release-history summary").click()
    expect(page.locator(".history li").first).to_contain_text("share set to 50%")

    page.locator("#rollback").click()
    expect(page.locator("#production-version")).to_have_text(f"v{before}")
    expect(page.locator("#candidate-none")).to_be_visible()
    state = stack_client.get("/api/release").get_json()
    assert (state["production"], state["candidate"]) == (before, None)
    assert page.js_errors == []


def test_compare_versions_on_a_dataset_split_and_set_a_threshold(page, live_server, stack_app, stack_client, trained):
    with stack_app.app_context():
        newest = db.session.scalar(select(func.max(ModelVersion.version))) or 0
    version = newest + 1
    register_bundle(stack_app, trained[1], version)
    colours = {"red": 3, "green": 3, "blue": 3}
    files = {**class_files(colours, prefix="train/"), **class_files(colours, prefix="val/", seed=40),
             **class_files(colours, prefix="test/", seed=70)}
    dataset_id = upload_dataset(stack_client, {
        "name": "compare-set", "archive": (io.BytesIO(zip_bytes(files)), "c.zip")})["id"]
    page.goto(f"{live_server}/models")
    page.select_option("#compare-dataset", str(dataset_id))
    expect(page.locator("#compare-split option").first).to_have_text("test (9 images)")
    for box in page.locator(".versions-pick input").all():
        box.set_checked(box.get_attribute("value") == str(version))
    page.locator("#compare-start").click()
    row = page.locator(f'#compare-table tbody tr[data-version="{version}"]')
    expect(row.locator("td").nth(1)).to_have_text("succeeded", timeout=60_000)
    expect(row.locator("td").nth(2)).to_have_text("9")
    assert float(row.locator("td").nth(3).inner_text().rstrip("%")) >= 80
    headers = page.locator("#compare-table thead th").all_inner_texts()
    assert headers[5:8] == ["F1 red", "F1 green", "F1 blue"] and headers[-2:] == ["p50", "p95"]

    threshold = page.locator(f'tr[data-version="{version}"] .threshold-input')
    threshold.fill("0.7")
    page.locator(f'tr[data-version="{version}"] .save-threshold').click()
    expect(page.locator(f'tr[data-version="{version}"] .save-threshold')).to_have_text("Saved")
    assert stack_client.get(f"/api/models/{version}").get_json()["abstain_threshold"] == 0.7
    threshold.fill("3")
    page.locator(f'tr[data-version="{version}"] .save-threshold').click()
    expect(page.locator("#models-error")).to_contain_text("between 0 and 1")
    assert stack_client.get(f"/api/models/{version}").get_json()["abstain_threshold"] == 0.7
    threshold.fill("")
    threshold.press_sequentially("1e")  # no number: the field reads as empty, which must not turn it off
    page.locator(f'tr[data-version="{version}"] .save-threshold').click()
    expect(page.locator("#models-error")).to_contain_text("Enter a number from 0.01 to 0.99")
    assert stack_client.get(f"/api/models/{version}").get_json()["abstain_threshold"] == 0.7
    assert page.js_errors == []
