"""A person starts training from the dataset page and watches it learn."""
import re

import pytest
from playwright.sync_api import expect

from tests.integration.test_training import upload_colours, worker_held
from tests.stack import upload_dataset

pytestmark = pytest.mark.e2e


def fill_fast_options(page, epochs: str):
    page.select_option('#train-form select[name="backbone"]', "mobilenet_v3_small")
    page.fill('#train-form input[name="epochs"]', epochs)
    page.fill('#train-form input[name="batch_size"]', "8")
    page.fill('#train-form input[name="image_size"]', "32")
    page.fill('#train-form input[name="learning_rate"]', "0.003")


# Every width the job page gives its progress bar, recorded as it happens (a sampled reading misses the
# moves of a job whose epochs take a fraction of a second).
RECORD_BAR_WIDTHS = """(() => {
  window.barWidths = [];
  document.addEventListener("DOMContentLoaded", () => {
    const bar = document.querySelector("#job-progress .bar");
    if (!bar) return;
    new MutationObserver(() => window.barWidths.push(parseFloat(bar.style.width) || 0))
      .observe(bar, { attributes: true, attributeFilter: ["style"] });
  });
})();"""


def test_train_from_the_dataset_page_and_watch_it_live(page, live_server, stack_client):
    dataset_id = upload_colours(stack_client, seed=70_000)
    page.add_init_script(RECORD_BAR_WIDTHS)
    page.goto(f"{live_server}/datasets/{dataset_id}")
    expect(page.locator('#train-form input[name="pretrained"]')).to_be_disabled()
    expect(page.locator("#weights-note")).to_contain_text("train from scratch")
    fill_fast_options(page, "8")
    with worker_held(stack_client, dataset_id) as release:  # the page is open before the job starts
        page.click("#train-button")
        page.wait_for_url(re.compile(r"/jobs/\d+$"))
        expect(page.locator("#job-status")).to_have_text("queued")
        release()

    rows = page.locator("#epoch-table tbody tr")
    expect(rows.nth(1)).to_be_visible(timeout=120_000)  # at least two epochs: the charts have lines
    expect(page.locator("#chart-acc polyline")).to_have_count(2)
    expect(page.locator("#stat-speed")).not_to_have_text("–")

    expect(page.locator("#job-status")).to_have_text("succeeded", timeout=300_000)
    expect(page.locator("#job-progress .bar")).to_have_attribute("style", re.compile(r"width: 100%"))
    moving = [width for width in page.evaluate("window.barWidths") if 0 < width < 100]
    assert len(set(moving)) >= 2, page.evaluate("window.barWidths")  # it moved on the page, no reload
    expect(rows).to_have_count(8)
    expect(page.locator("#results")).to_be_visible()
    expect(page.locator("#confusion tr")).to_have_count(4)
    expect(page.locator("#per-class tbody tr").first).to_contain_text("红色")
    expect(page.locator("#stat-model")).to_contain_text("version")
    expect(page.locator("#stat-device")).to_have_text("cpu · float32")  # the worker's CPU, its model in the tooltip
    assert page.locator("#stat-device").get_attribute("title").strip() != ""
    expect(page.locator("#cancel-job")).to_be_hidden()
    assert page.js_errors == []


def test_bad_option_is_shown_beside_its_field(page, live_server, stack_client):
    dataset_id = upload_colours(stack_client, per_class=3, seed=80_000)
    page.goto(f"{live_server}/datasets/{dataset_id}")
    fill_fast_options(page, "0")
    page.click("#train-button")
    expect(page.locator('.field-error[data-field="epochs"]')).to_have_text("Epochs must be between 1 and 500.")
    assert page.url.endswith(f"/datasets/{dataset_id}")

    # the advanced augmentation fields show the preset's values and their own errors
    page.fill('#train-form input[name="epochs"]', "1")
    page.select_option('#train-form select[name="augmentation"]', "strong")
    page.click("#augmentation-advanced summary")
    expect(page.locator('#train-form input[name="randaugment_m"]')).to_have_attribute("placeholder", "preset: 9")
    page.fill('#train-form input[name="randaugment_m"]', "11")
    page.click("#train-button")
    expect(page.locator('.field-error[data-field="randaugment_m"]')).to_contain_text("between 0 and 10")
    expect(page.locator("#head-only-note")).to_be_hidden()  # the backbone is not frozen
    assert page.url.endswith(f"/datasets/{dataset_id}") and page.js_errors == []


def test_cancel_from_the_dashboard(page, live_server, stack_client):
    dataset_id = upload_colours(stack_client, per_class=8, seed=90_000)
    job_id = stack_client.post("/api/jobs", json={
        "dataset_id": dataset_id, "backbone": "mobilenet_v3_small", "pretrained": False, "epochs": 300,
        "batch_size": 8, "image_size": 32}).get_json()["id"]
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto(f"{live_server}/jobs/{job_id}")
    expect(page.locator("#job-status")).to_have_text("running", timeout=60_000)
    rows = page.locator("#epoch-table tbody tr")
    expect(rows.nth(1)).to_be_visible(timeout=60_000)  # at least two epochs; more keep coming
    page.click("#cancel-job")
    expect(page.locator("#job-status")).to_have_text("cancelled", timeout=60_000)
    expect(page.locator("#error-message")).to_contain_text("Cancelled on request")
    expect(page.locator("#stat-checkpoint")).to_contain_text("MB")

    # A person resumes it: it continues after its last saved epoch, without a reload.
    saved = stack_client.get(f"/api/jobs/{job_id}").get_json()["epochs"][-1]["epoch"]
    page.click("#resume-job")
    expect(page.locator("#job-status")).to_have_text(re.compile("queued|running"), timeout=30_000)
    expect(page.locator("#resume-note")).to_contain_text(f"Resumed after epoch {saved} (attempt 2)", timeout=60_000)
    expect(page.locator("#error-card")).to_be_hidden()
    expect(rows.nth(saved)).to_be_visible(timeout=60_000)  # an epoch after the saved one, at least
    expect(rows.first.locator("td").first).to_have_text("1")  # the saved epochs stay, the new ones follow
    page.click("#cancel-job")
    expect(page.locator("#job-status")).to_have_text("cancelled", timeout=60_000)
    epochs = [e["epoch"] for e in stack_client.get(f"/api/jobs/{job_id}").get_json()["epochs"]]
    assert epochs == list(range(1, len(epochs) + 1))
    assert page.js_errors == []


def test_test_split_results_are_shown_apart_from_validation(page, live_server, stack_client):
    import io

    from tests.images import noisy_image, zip_bytes
    from tests.integration.test_training import COLOURS, finished, start, wait_for

    files = {f"{split}/{name}/{n}.png": noisy_image(80_000 + i * 100 + offset + n, colour)
             for split, count, offset in (("train", 8, 0), ("val", 2, 30), ("test", 3, 60))
             for i, (name, colour) in enumerate(COLOURS.items()) for n in range(count)}
    dataset_id = upload_dataset(stack_client, {"archive": (io.BytesIO(zip_bytes(files)), "split.zip")})["id"]
    job = wait_for(stack_client, start(stack_client, dataset_id, epochs=1), finished)
    page.goto(f"{live_server}/jobs/{job['id']}")
    expect(page.locator("#test-results")).to_be_visible()
    expect(page.locator("#test-images")).to_have_text("9")
    expect(page.locator("#test-accuracy")).to_have_text(f"{job['test']['accuracy'] * 100:.1f}%")
    expect(page.locator("#test-confusion tr")).to_have_count(4)
    expect(page.locator("#test-per-class tbody tr")).to_have_count(3)
    expect(page.locator("#results")).to_be_visible()
    cell = page.locator("#test-confusion td.clickable").first
    count = int(cell.inner_text())
    cell.click()
    expect(page.locator("#test-cell-gallery figure")).to_have_count(count)
    expect(page.locator("#test-cell-gallery figure img").first).to_be_visible()
    expect(page.locator("#test-cell-gallery figcaption").first).to_contain_text("%")
    page.locator("#test-cell-gallery .explain-toggle input").check()  # where the job's model version looked
    expect(page.locator("#test-cell-gallery .explain-overlay").first).to_be_visible(timeout=30_000)
    expect(page.locator("#test-cell-gallery .explain-legend")).to_contain_text("map")
    page.locator("#test-cell-gallery button", has_text="Close").click()
    expect(page.locator("#test-cell-gallery")).to_be_hidden()
    assert page.js_errors == []


def test_the_form_starts_at_the_datasets_suggestion_with_reasons_and_an_estimate(page, live_server, stack_client):
    dataset_id = upload_colours(stack_client, per_class=6, seed=95_000)
    page.goto(f"{live_server}/datasets/{dataset_id}")
    # 40 px images: kept at 40 px, trained from scratch without augmentation, epochs as a ceiling
    expect(page.locator('#train-form input[name="image_size"]')).to_have_value("40")
    expect(page.locator('[data-reason="image_size"]')).to_contain_text("about 40 px")
    expect(page.locator('#train-form select[name="augmentation"]')).to_have_value("none")
    expect(page.locator("#suggestion-summary")).to_contain_text("tiny images")
    # no worker has timed resnet18 at 40 px yet: a probe measures it and the estimate appears by itself
    expect(page.locator("#estimate-text")).to_contain_text("Estimated time: at most about", timeout=90_000)
    expect(page.locator("#estimate-text")).to_contain_text("measured")

    page.fill('#train-form input[name="epochs"]', "2")
    page.select_option('#train-form select[name="backbone"]', "mobilenet_v3_small")
    expect(page.locator('[data-reason="epochs"]')).to_have_text("")
    expect(page.locator("#estimate-text")).not_to_contain_text("at most", timeout=30_000)  # every epoch runs
    page.click("#train-button")
    page.wait_for_url(re.compile(r"/jobs/\d+$"))
    job = stack_client.get(f"/api/jobs/{page.url.rsplit('/', 1)[1]}").get_json()
    assert job["config"]["epochs"] == 2 and job["config"]["early_stopping_patience"] == 0
    assert job["config"]["backbone"] == "mobilenet_v3_small" and job["config"]["image_size"] == 40
    assert "image_size" in job["suggested"] and "epochs" not in job["suggested"]
    expect(page.locator("#suggested-note")).to_contain_text("image size")
    expect(page.locator("#job-status")).to_have_text("succeeded", timeout=300_000)
    assert page.js_errors == []
