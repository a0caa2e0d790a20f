"""A person uploads a folder of photos in the browser and sees the dataset page."""
import io
import re

import pytest
from playwright.sync_api import expect

from tests.stack import serving, upload_dataset
from tests.e2e.conftest import drop_file
from tests.images import class_files, zip_bytes

pytestmark = pytest.mark.e2e


def write_folder(root, files: dict[str, bytes]):
    for path, data in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


def test_upload_a_folder_and_see_the_classes(page, live_server, tmp_path):
    folder = tmp_path / "花卉"
    write_folder(folder, class_files({"玫瑰": 6, "郁金香 红": 4}))
    (folder / "玫瑰" / "broken.jpg").write_bytes(b"not really a jpeg")

    page.goto(f"{live_server}/datasets")
    expect(page.locator("#health-badge")).to_have_text(re.compile(r"^ready"))
    page.set_input_files("#folder-input", str(folder))
    expect(page.locator("#selection")).to_contain_text("11 files")
    page.fill("#dataset-name", "春天的花")
    page.click("#upload-button")

    page.wait_for_url(re.compile(r"/datasets/\d+$"))
    expect(page.locator("#dataset-title")).to_have_text("春天的花")
    rose = page.locator('#class-table tr[data-class="玫瑰"]')
    expect(rose.locator(".train")).to_have_text("5")
    expect(rose.locator(".val")).to_have_text("1")
    tulip = page.locator('#class-table tr[data-class="郁金香 红"]')
    expect(tulip.locator(".train")).to_have_text("3")
    expect(tulip.locator(".val")).to_have_text("1")
    expect(page.locator("#rejected")).to_contain_text("broken.jpg")
    expect(page.locator("#rejected")).to_contain_text("not an image")
    expect(page.locator(".thumbs img")).to_have_count(10)
    page.locator("#samples").scroll_into_view_if_needed()  # thumbnails load lazily, once in view
    page.wait_for_function("() => [...document.querySelectorAll('.thumbs img')].every(image => image.complete)")
    widths = page.eval_on_selector_all(".thumbs img", "imgs => imgs.map(i => i.naturalWidth)")
    assert all(0 < width <= 192 for width in widths)
    assert page.js_errors == []


def test_upload_error_is_shown_in_words(page, live_server, tmp_path):
    folder = tmp_path / "one"
    write_folder(folder, class_files({"solo": 3}))
    page.goto(f"{live_server}/datasets")
    page.set_input_files("#folder-input", str(folder))
    page.click("#upload-button")
    page.wait_for_url(re.compile(r"/datasets/\d+$"))  # checked in the background: the reason lands here
    expect(page.locator("#ingest-error")).to_contain_text("at least 2 classes", timeout=30_000)
    expect(page.locator("#ingest-title")).to_have_text("This upload could not be used")
    expect(page.locator("#delete-dataset")).to_be_visible()
    assert page.js_errors == []


def test_delete_from_the_dataset_page(page, live_server, stack_client):
    files = class_files({"cat": 3, "dog": 3})
    dataset_id = upload_dataset(stack_client, {
        "name": "to delete", "files": [(io.BytesIO(data), path) for path, data in files.items()]})["id"]
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto(f"{live_server}/datasets/{dataset_id}")
    page.click("#delete-dataset")
    page.wait_for_url(re.compile(r"/datasets$"))
    expect(page.locator(f'a[href="/datasets/{dataset_id}"]')).to_have_count(0)
    assert stack_client.get(f"/api/datasets/{dataset_id}").status_code == 404


def test_drop_a_zip_with_train_and_val_folders(page, live_server):
    files = {**class_files({"苹果": 3, "梨": 3}, prefix="fruit/train/"),
             **class_files({"苹果": 1, "梨": 1}, prefix="fruit/val/", seed=500)}
    page.goto(f"{live_server}/datasets")
    drop_file(page, "#dropzone", zip_bytes(files), "水果.zip", "application/zip")
    expect(page.locator("#selection")).to_contain_text("水果.zip")
    page.click("#upload-button")
    page.wait_for_url(re.compile(r"/datasets/\d+$"))
    expect(page.locator("#dataset-title")).to_have_text("水果")
    pear = page.locator('#class-table tr[data-class="梨"]')
    expect(pear.locator(".train")).to_have_text("3")
    expect(pear.locator(".val")).to_have_text("1")
    expect(page.locator("#warnings")).to_have_count(0)


def test_badge_turns_red_when_redis_is_down(page, app):
    with serving(app) as url:
        page.goto(f"{url}/datasets")
        badge = page.locator("#health-badge")
        expect(badge).to_have_text("Redis down")
        expect(badge).to_have_class(re.compile("badge-bad"))
