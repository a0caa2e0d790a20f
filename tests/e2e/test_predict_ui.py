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
