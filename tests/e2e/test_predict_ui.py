"""A person drags an image onto the predict page and reads the predicted class."""
import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import drop_file
from tests.images import noisy_image
from tests.integration.test_training import finished, start, upload_colours, wait_for
from webapp import create_app

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def trained_job(stack):
    client = create_app(stack["config"]).test_client()
    dataset_id = upload_colours(client, seed=30_000)
    job = wait_for(client, start(client, dataset_id, epochs=5, promote_when_done=True), finished)
    assert job["status"] == "succeeded", job["error"]
    return job


def test_drag_an_image_and_read_the_class(page, live_server, trained_job):
    job = trained_job
    page.goto(f"{live_server}/predict")
    for name, colour in (("blue.png", (40, 60, 220)), ("red.png", (220, 40, 40))):
        drop_file(page, "#drop-image", noisy_image(777 + len(name), colour, size=(90, 70)), name)
    expect(page.locator(".prediction .answer")).to_have_count(2, timeout=30_000)
    answers = page.locator(".prediction .answer").all_inner_texts()
    assert answers == ["红色", "蓝色"]  # newest first
    expect(page.locator(".prediction").first.locator(".status")).to_contain_text(f"model v{job['model_version']}")
    expect(page.locator(".prediction").first.locator(".bar-row")).to_have_count(3)
    status = page.locator(".prediction").first.locator(".status").inner_text()
    assert "ONNX Runtime" in status or "Paddle Inference" in status
    page.goto(f"{live_server}/models")
    runtime = page.locator(f'tr[data-version="{job["model_version"]}"] td.runtime').inner_text()
    assert ("ONNX Runtime" in runtime or "Paddle Inference" in runtime) and "onnx" in runtime and "ms" in runtime
    assert page.js_errors == []


def test_a_file_that_is_not_an_image_says_why(page, live_server, trained_job):
    page.goto(f"{live_server}/predict")
    drop_file(page, "#drop-image", b"plain text", "notes.png")
    expect(page.locator(".prediction.failed .status")).to_contain_text("not an image")


def test_mark_answers_then_turn_corrections_into_a_dataset(page, live_server, trained_job):
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto(f"{live_server}/feedback")
    before = int(page.locator("#total-feedback").inner_text().replace(",", ""))
    page.goto(f"{live_server}/predict")
    images = [("r1.png", (220, 40, 40)), ("r2.png", (225, 45, 35)), ("b1.png", (40, 60, 220)), ("b2.png", (35, 55, 225)),
              ("ok.png", (220, 40, 40))]
    for seed, (name, colour) in enumerate(images):
        drop_file(page, "#drop-image", noisy_image(900 + seed, colour, size=(80, 80)), name)
    expect(page.locator(".prediction .feedback-row")).to_have_count(5, timeout=30_000)
    cards = page.locator(".prediction")  # newest first: ok, b2, b1, r2, r1
    cards.nth(0).locator("[data-verdict=right]").click()
    expect(cards.nth(0).locator(".feedback-row")).to_contain_text("Marked right: 红色")
    for index, label in ((1, "青色"), (2, "青色"), (3, "粉色"), (4, "粉色")):
        row = cards.nth(index).locator(".feedback-row")
        row.locator("[data-verdict=wrong]").click()
        row.locator("input").fill(label)
        row.locator("input").press("Enter")
        expect(row).to_contain_text(f"Marked wrong: it is {label}")
        expect(row).to_contain_text("image kept")
    cards.nth(4).locator(".feedback-row button", has_text="Change").click()
    cards.nth(4).locator("[data-verdict=wrong]").click()
    cards.nth(4).locator(".feedback-row input").fill("a/b")
    cards.nth(4).locator(".feedback-row button", has_text="Send").click()
    expect(cards.nth(4).locator(".feedback-row .error")).to_contain_text("slash")

    page.goto(f"{live_server}/feedback")
    expect(page.locator("#total-feedback")).to_have_text(str(before + 5))
    expect(page.locator("#feedback-table tbody tr")).to_have_count(before + 5)
    expect(page.locator("#feedback-table tbody tr").first.locator("img.feedback-thumb")).to_be_visible()
    page.select_option("#filter-kind", "corrections")
    expect(page.locator("#feedback-table tbody tr .verdict-right")).to_have_count(0)
    page.fill("#dataset-name", "反馈纠正")
    page.click("#make-dataset")
    expect(page.locator("#dataset-done")).to_contain_text("反馈纠正")
    expect(page.locator("#dataset-done")).to_contain_text("4 of them from feedback")
    expect(page.locator("#total-pending")).to_have_text("0")
    made = page.locator("#dataset-done a").get_attribute("href")
    page.click("#make-dataset")
    expect(page.locator("#dataset-error")).to_contain_text("no corrected images")
    page.click("#purge-added")
    expect(page.locator("#purge-done")).to_contain_text("Deleted 4 images")
    page.goto(f"{live_server}{made}")
    expect(page.locator("h1")).to_contain_text("反馈纠正")
    assert page.js_errors == []
